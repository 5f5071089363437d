/**
 * One .safetensors file opened for lazy reading: the header is parsed and validated at open,
 * tensor data is read on demand, one tensor at a time, with positioned reads on a single file
 * handle. The file is never read whole, so memory stays at one tensor's bytes.
 */
import { type FileHandle, open } from "node:fs/promises";
import { resolve } from "node:path";
import { isFloatDType } from "../dtypes.js";
import { SafetensorsError } from "../errors.js";
import { decodeOwnedToF32 } from "../float16.js";
import { parseHeaderJson, parseHeaderLength } from "./header.js";
import type { TensorInfo } from "./types.js";

/** Largest single read(2) Node accepts is 2 GiB - 1; stay well under it. */
const MAX_READ_CHUNK = 1 << 30;

/** Fills `target` from `position` on, looping over short reads; throws if the file ends early. */
export async function readFully(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  file: string,
  tensor?: string,
): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(MAX_READ_CHUNK, target.byteLength - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        `unexpected end of file at byte ${position + done} (needed ${target.byteLength - done} more bytes; file truncated or changed while open?)`,
        file,
        tensor,
      );
    }
    done += bytesRead;
  }
}

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string> | undefined;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private handle: FileHandle | undefined;

  private constructor(
    path: string,
    handle: FileHandle,
    metadata: Record<string, string> | undefined,
    tensors: ReadonlyMap<string, TensorInfo>,
  ) {
    this.path = path;
    this.handle = handle;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /** Opens and validates the header; throws SafetensorsError on any malformed input. */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = resolve(path);
    let handle: FileHandle;
    try {
      handle = await open(file, "r");
    } catch (cause) {
      throw new SafetensorsError(
        `cannot open: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`,
        file,
        undefined,
        { cause },
      );
    }
    try {
      const { size } = await handle.stat();
      const prefix = new Uint8Array(8);
      if (size >= 8) await readFully(handle, prefix, 0, file);
      const headerLength = parseHeaderLength(prefix, size, file);
      const headerBytes = new Uint8Array(headerLength);
      await readFully(handle, headerBytes, 8, file);
      const dataStart = 8 + headerLength;
      const parsed = parseHeaderJson(headerBytes, dataStart, size - dataStart, file);
      const tensors = new Map(parsed.tensors.map((t) => [t.name, t] as const));
      return new SafetensorsFile(file, handle, parsed.metadata, tensors);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Header entry of a tensor; throws SafetensorsError naming it if absent. */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) {
      throw new SafetensorsError("no such tensor in this file", this.path, name);
    }
    return info;
  }

  /** The tensor's raw little-endian bytes, in a fresh buffer aligned to 8 bytes. */
  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const handle = this.handle;
    if (handle === undefined) throw new SafetensorsError("file is closed", this.path, name);
    // A fresh, unpooled ArrayBuffer starts at offset 0, so typed views on it are aligned.
    const bytes = new Uint8Array(new ArrayBuffer(info.byteLength));
    await readFully(handle, bytes, info.dataOffset, this.path, name);
    return bytes;
  }

  /** The tensor decoded to Float32 (from F64, F32, F16 or BF16). */
  async readF32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    if (!isFloatDType(info.dtype)) {
      throw new SafetensorsError(
        `dtype ${info.dtype} is not a float type; readF32 decodes F64, F32, F16 and BF16 (use readBytes)`,
        this.path,
        name,
      );
    }
    return decodeOwnedToF32(await this.readBytes(name), info.dtype);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

/**
 * One .safetensors file opened for lazy reading: the header is parsed and validated at open,
 * tensor data is read on demand, one tensor at a time, with positioned reads on a single file
 * handle. The file is never read whole, so memory stays at one tensor's bytes.
 */
import type { FileHandle } from "node:fs/promises";
import { resolve } from "node:path";
import { isFloatDType } from "../dtypes.js";
import { SafetensorsError } from "../errors.js";
import { decodeOwnedToF32, widenHalfInPlace } from "../float16.js";
import { NotRegularFileError, openRegularFile } from "../fs-safe.js";
import { parseHeaderJson, parseHeaderLength } from "./header.js";
import type { TensorInfo } from "./types.js";

/**
 * Reads go in sequential 16 MB chunks: on a cold page cache this kept closer to a plain
 * sequential read than one huge read(2) or several chunks in flight (bench/ and docs/benchmarks.md),
 * and it stays far below Node's 2 GiB cap on a single read.
 */
const READ_CHUNK = 16 << 20;

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
    const length = Math.min(READ_CHUNK, target.byteLength - done);
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(target, done, length, position + done));
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
      throw new SafetensorsError(`read failed at byte ${position + done}: ${code}`, file, tensor, {
        cause,
      });
    }
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

/** A fresh, unpooled buffer, or a SafetensorsError naming the tensor when it cannot be had. */
function allocate(byteLength: number, file: string, tensor: string): ArrayBuffer {
  try {
    return new ArrayBuffer(byteLength);
  } catch (cause) {
    throw new SafetensorsError(
      `cannot allocate ${byteLength} bytes (${(byteLength / 2 ** 30).toFixed(1)} GiB) to read this tensor: ${(cause as Error).message}`,
      file,
      tensor,
      { cause },
    );
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
      handle = await openRegularFile(file);
    } catch (cause) {
      if (cause instanceof NotRegularFileError) {
        throw new SafetensorsError(cause.message, file, undefined, { cause });
      }
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

  /**
   * Checks, before memory is allocated for a tensor, that its data still lies inside the file:
   * the header was checked against the size at open, but the file may have shrunk since.
   */
  private async checkInFile(info: TensorInfo): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) throw new SafetensorsError("file is closed", this.path, info.name);
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
      throw new SafetensorsError(`stat failed: ${code}`, this.path, info.name, { cause });
    }
    const end = info.dataOffset + info.byteLength;
    if (end > size) {
      throw new SafetensorsError(
        `the tensor's data ends at byte ${end} but the file is now ${size} bytes (truncated or changed since it was opened?)`,
        this.path,
        info.name,
      );
    }
  }

  /** The tensor's raw little-endian bytes, in a fresh buffer aligned to 8 bytes. */
  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    await this.checkInFile(info);
    // A fresh, unpooled ArrayBuffer starts at offset 0, so typed views on it are aligned.
    return this.readInto(name, new Uint8Array(allocate(info.byteLength, this.path, name)));
  }

  /**
   * Reads the tensor's bytes into the start of `target` (at least byteLength long) and returns
   * that prefix. Lets a caller reuse one buffer across tensors: fresh memory costs page faults.
   */
  async readInto(name: string, target: Uint8Array): Promise<Uint8Array> {
    const info = this.info(name);
    const handle = this.handle;
    if (handle === undefined) throw new SafetensorsError("file is closed", this.path, name);
    if (target.byteLength < info.byteLength) {
      throw new SafetensorsError(
        `target buffer has ${target.byteLength} bytes, the tensor needs ${info.byteLength}`,
        this.path,
        name,
      );
    }
    const out = target.subarray(0, info.byteLength);
    await readFully(handle, out, info.dataOffset, this.path, name);
    return out;
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
    if (info.dtype === "F16" || info.dtype === "BF16") {
      // Read the raw halves into the top of the output buffer and widen in place: one
      // allocation of the Float32 size instead of raw bytes plus output.
      const n = info.byteLength / 2;
      await this.checkInFile(info);
      const buffer = allocate(4 * n, this.path, name);
      await this.readInto(name, new Uint8Array(buffer, 2 * n, 2 * n));
      return widenHalfInPlace(buffer, n, info.dtype);
    }
    const bytes = await this.readBytes(name);
    try {
      return decodeOwnedToF32(bytes, info.dtype);
    } catch (cause) {
      if (!(cause instanceof RangeError)) throw cause;
      throw new SafetensorsError(
        `cannot allocate the Float32 copy of this tensor: ${cause.message}`,
        this.path,
        name,
        { cause },
      );
    }
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

/**
 * Streaming safetensors writer. The header (with every tensor's offsets, computed up front from
 * dtype and shape) is written first, then each tensor's bytes in order, so a producer can create
 * one tensor at a time and memory stays at one tensor. Like the reference implementation, the
 * header JSON is padded with spaces to a multiple of 8 bytes so the data section is aligned.
 */
import type { FileHandle } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic, writeTextAtomic } from "../atomic.js";
import { DTYPE_SIZE, elementCount, isDType } from "../dtypes.js";
import { SafetensorsError } from "../errors.js";
import { INDEX_FILE_NAME } from "./checkpoint.js";
import type { TensorToWrite } from "./types.js";

interface PlannedTensor {
  tensor: TensorToWrite;
  byteLength: number;
}

function planTensors(file: string, tensors: readonly TensorToWrite[]): PlannedTensor[] {
  const seen = new Set<string>();
  return tensors.map((tensor) => {
    const { name, dtype, shape } = tensor;
    if (typeof name !== "string" || name === "" || name === "__metadata__") {
      throw new SafetensorsError(`invalid tensor name ${JSON.stringify(name)}`, file, name);
    }
    if (seen.has(name)) throw new SafetensorsError("duplicate tensor name", file, name);
    seen.add(name);
    if (!isDType(dtype))
      throw new SafetensorsError(`unknown dtype ${JSON.stringify(dtype)}`, file, name);
    const count = Array.isArray(shape) ? elementCount(shape) : undefined;
    if (count === undefined) {
      throw new SafetensorsError(
        `shape ${JSON.stringify(shape)} must hold non-negative integers`,
        file,
        name,
      );
    }
    const byteLength = count * DTYPE_SIZE[dtype];
    if (tensor.data instanceof Uint8Array && tensor.data.byteLength !== byteLength) {
      throw new SafetensorsError(
        `data has ${tensor.data.byteLength} bytes but shape ${JSON.stringify(shape)} of ${dtype} needs ${byteLength}`,
        file,
        name,
      );
    }
    return { tensor, byteLength };
  });
}

/** The header bytes: JSON padded with spaces to a multiple of 8, after the u64 length. */
export function encodeHeader(
  planned: readonly PlannedTensor[],
  metadata: Record<string, string> | undefined,
  file: string,
): Uint8Array {
  // Null prototype: a tensor named "__proto__" must become a plain key, not a prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(
          `metadata value for ${JSON.stringify(k)} must be a string`,
          file,
        );
      }
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const { tensor, byteLength } of planned) {
    header[tensor.name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data_offsets: [offset, offset + byteLength],
    };
    offset += byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done);
    done += bytesWritten;
  }
}

/** Streams tensors to `path` (header first, padded to 8 bytes), atomically. */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  options: { metadata?: Record<string, string> } = {},
): Promise<void> {
  const file = resolve(path);
  const planned = planTensors(file, tensors);
  const header = encodeHeader(planned, options.metadata, file);
  await writeFileAtomic(file, async (handle) => {
    await writeAll(handle, header);
    for (const { tensor, byteLength } of planned) {
      const bytes = typeof tensor.data === "function" ? await tensor.data() : tensor.data;
      if (!(bytes instanceof Uint8Array) || bytes.byteLength !== byteLength) {
        throw new SafetensorsError(
          `producer returned ${bytes instanceof Uint8Array ? `${bytes.byteLength} bytes` : typeof bytes}, expected a Uint8Array of ${byteLength} bytes`,
          file,
          tensor.name,
        );
      }
      await writeAll(handle, bytes);
    }
  });
}

function shardName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Writes tensors into shards of at most `maxShardBytes` of tensor data each (a tensor larger
 * than that gets a shard to itself), named `model-0000i-of-0000n.safetensors` like transformers,
 * then `model.safetensors.index.json` last, so a reader never sees an index without its shards.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: TensorToWrite[],
  options: { maxShardBytes: number; metadata?: Record<string, string> },
): Promise<void> {
  const folder = resolve(dir);
  const indexPath = join(folder, INDEX_FILE_NAME);
  if (!(options.maxShardBytes > 0)) {
    throw new SafetensorsError(
      `maxShardBytes must be positive, got ${options.maxShardBytes}`,
      indexPath,
    );
  }
  const planned = planTensors(indexPath, tensors);
  const groups: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let currentBytes = 0;
  for (const p of planned) {
    if (current.length > 0 && currentBytes + p.byteLength > options.maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(p);
    currentBytes += p.byteLength;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [i, group] of groups.entries()) {
    const name = shardName(i, groups.length);
    await writeSafetensors(
      join(folder, name),
      group.map((p) => p.tensor),
      options.metadata === undefined ? {} : { metadata: options.metadata },
    );
    for (const p of group) {
      weightMap[p.tensor.name] = name;
      totalSize += p.byteLength;
    }
  }
  const sortedMap = Object.fromEntries(
    Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  const index = { metadata: { total_size: totalSize }, weight_map: sortedMap };
  await writeTextAtomic(indexPath, `${JSON.stringify(index, null, 2)}\n`);
}

/**
 * A checkpoint made of one .safetensors file or of shards listed by a
 * `*.safetensors.index.json` ({"metadata": ..., "weight_map": {tensor: shard file}}), the layout
 * transformers writes. Every shard's header is validated at open; tensors are read lazily.
 */
import { stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { SafetensorsError } from "../errors.js";
import { NotRegularFileError, readRegularFile } from "../fs-safe.js";
import { describeJson, jsonNestingDepth, MAX_CONFIG_DEPTH } from "../json-safe.js";
import { decodeUtf8Strict } from "../utf8.js";
import { SafetensorsFile } from "./file.js";
import type { TensorInfo } from "./types.js";

export const SINGLE_FILE_NAME = "model.safetensors";
export const INDEX_FILE_NAME = "model.safetensors.index.json";

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Parses an index file into tensor → shard file name. */
async function readWeightMap(indexPath: string): Promise<Map<string, string>> {
  let json: unknown;
  try {
    const decoded = decodeUtf8Strict(await readRegularFile(indexPath));
    if (!decoded.ok) {
      throw new Error(
        `not valid UTF-8: invalid byte sequence at byte ${decoded.offset} (line ${decoded.line})`,
      );
    }
    const { text } = decoded;
    if (jsonNestingDepth(text, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH) {
      throw new Error(`JSON nests more than ${MAX_CONFIG_DEPTH} levels deep`);
    }
    json = JSON.parse(text);
  } catch (cause) {
    if (cause instanceof NotRegularFileError) {
      throw new SafetensorsError(cause.message, indexPath, undefined, { cause });
    }
    throw new SafetensorsError(
      `cannot read shard index as JSON (${(cause as Error).message})`,
      indexPath,
      undefined,
      { cause },
    );
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new SafetensorsError('shard index must have a "weight_map" object', indexPath);
  }
  const out = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    // Shards must be plain file names next to the index: no paths that escape the folder.
    if (typeof shard !== "string" || shard === "" || shard !== basename(shard) || shard === "..") {
      throw new SafetensorsError(
        `weight_map entry must be a shard file name in the same folder, got ${describeJson(shard)}`,
        indexPath,
        tensor,
      );
    }
    out.set(tensor, shard);
  }
  return out;
}

export class SafetensorsCheckpoint {
  /** The files backing the checkpoint (one, or the shards in index order). */
  readonly files: readonly SafetensorsFile[];
  private readonly byName: Map<string, { file: SafetensorsFile; info: TensorInfo }>;
  private readonly label: string;

  private constructor(
    label: string,
    files: SafetensorsFile[],
    byName: Map<string, { file: SafetensorsFile; info: TensorInfo }>,
  ) {
    this.label = label;
    this.files = files;
    this.byName = byName;
  }

  /**
   * Opens a directory holding model.safetensors or model.safetensors.index.json (exactly one of
   * them: both is a SafetensorsError), a `.safetensors` file, or a `*.safetensors.index.json` file.
   */
  static async open(pathOrDir: string): Promise<SafetensorsCheckpoint> {
    const path = resolve(pathOrDir);
    if (await isDirectory(path)) {
      const hasSingle = await isFile(join(path, SINGLE_FILE_NAME));
      const hasIndex = await isFile(join(path, INDEX_FILE_NAME));
      // Both present usually means a re-save left a stale copy behind; silently picking one
      // could load old weights, so the caller must name the file it means.
      if (hasSingle && hasIndex) {
        throw new SafetensorsError(
          `folder has both ${SINGLE_FILE_NAME} and ${INDEX_FILE_NAME}, so the checkpoint is ambiguous; ` +
            "remove the stale one or open the file you mean directly",
          path,
        );
      }
      if (hasSingle) return SafetensorsCheckpoint.openSingle(join(path, SINGLE_FILE_NAME));
      if (hasIndex) return SafetensorsCheckpoint.openSharded(join(path, INDEX_FILE_NAME));
      throw new SafetensorsError(
        `folder has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}`,
        path,
      );
    }
    if (path.endsWith(".index.json")) return SafetensorsCheckpoint.openSharded(path);
    return SafetensorsCheckpoint.openSingle(path);
  }

  /** Tensor names (sorted). */
  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    return this.entry(name).info;
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.entry(name).file.readBytes(name);
  }

  /** See SafetensorsFile.readInto: reads into a caller-owned buffer. */
  readInto(name: string, target: Uint8Array): Promise<Uint8Array> {
    return this.entry(name).file.readInto(name, target);
  }

  readF32(name: string): Promise<Float32Array> {
    return this.entry(name).file.readF32(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }

  private entry(name: string): { file: SafetensorsFile; info: TensorInfo } {
    const entry = this.byName.get(name);
    if (entry === undefined) {
      throw new SafetensorsError("no such tensor in this checkpoint", this.label, name);
    }
    return entry;
  }

  private static async openSingle(path: string): Promise<SafetensorsCheckpoint> {
    const file = await SafetensorsFile.open(path);
    const byName = new Map(
      [...file.tensors.values()].map((info) => [info.name, { file, info }] as const),
    );
    return new SafetensorsCheckpoint(file.path, [file], byName);
  }

  private static async openSharded(indexPath: string): Promise<SafetensorsCheckpoint> {
    const weightMap = await readWeightMap(indexPath);
    const folder = dirname(indexPath);
    const shardNames = [...new Set(weightMap.values())];
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const shard of shardNames) {
        shards.set(shard, await SafetensorsFile.open(join(folder, shard)));
      }
      // The index is authoritative (as in transformers): a tensor it names must be in its shard.
      const byName = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();
      for (const [tensor, shard] of weightMap) {
        const file = shards.get(shard)!;
        const info = file.tensors.get(tensor);
        if (info === undefined) {
          throw new SafetensorsError(
            `the shard index maps this tensor to ${shard}, which does not contain it`,
            indexPath,
            tensor,
          );
        }
        byName.set(tensor, { file, info });
      }
      return new SafetensorsCheckpoint(indexPath, [...shards.values()], byName);
    } catch (error) {
      await Promise.all([...shards.values()].map((f) => f.close()));
      throw error;
    }
  }
}

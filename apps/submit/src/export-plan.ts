import { relative, sep } from "node:path";
import type { StrategyDefinition } from "@merge/strategies";
import { SubmitError } from "./errors.js";
import { resolveFrom } from "./workspace.js";

/**
 * Shard size of --save-model when --shard-size is not given: "5GB" (10⁹ bytes per GB), the
 * `max_shard_size` transformers used by default through 4.x and what most Hub checkpoints
 * (Mistral-7B among them) ship with; transformers 5 raised its default to "50GB", which leaves
 * a 7B model in one 14 GB file that is awkward to upload and resume.
 */
export const DEFAULT_SHARD_SIZE = "5GB";

/** The command-line side of the exports (--save-model, --save-adapter and their options). */
export interface ExportFlags {
  mergeOnly?: boolean;
  saveAdapter?: string;
  saveModel?: string;
  /** --shard-size: as transformers' max_shard_size, e.g. "5GB", "500MB", "2GiB" or bytes. */
  shardSize?: string;
  /** --adapter-rank: the rank an SVD-truncated adapter of a dense result keeps. */
  adapterRank?: number;
  /** `--save-onnx DIR`: the ONNX build as a folder transformers.js loads (save-onnx.ts). */
  saveOnnx?: string;
}

/** The validated exports of a run. */
export interface ExportPlan {
  /** Absolute folder for --save-adapter, or null. */
  saveAdapter: string | null;
  /** Absolute folder for --save-model, or null. */
  saveModel: string | null;
  /** Largest tensor data per --save-model shard, in bytes. */
  maxShardBytes: number;
  /** Rank of the SVD-truncated adapter of a dense result, or null (low-rank results: exact). */
  adapterRank: number | null;
  /** Absolute folder for --save-onnx, or null. */
  saveOnnx: string | null;
}

const UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/**
 * A size as transformers' `max_shard_size` takes it (convert_file_size_to_int): an integer of
 * bytes, or a number with a unit, decimal (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB).
 */
export function parseShardSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  const unit = m ? UNITS[(m[2] ?? "").toUpperCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : Number.NaN;
  if (!(bytes >= 1)) {
    throw new SubmitError(
      `--shard-size ${JSON.stringify(text)}: expected a size such as "5GB", "500MB", "2GiB" or a number of bytes`,
    );
  }
  return bytes;
}

function nested(a: string, b: string): boolean {
  const rel = relative(a, b);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

/**
 * Checks the export flags against each other and against what the method returns, before
 * anything is read: routed results have no static checkpoint or adapter; dense results become
 * an adapter only through an explicit SVD truncation (--adapter-rank), since that loses some
 * of the update. Exports go with --merge-only (see apps/submit/README.md, "Exporting").
 */
export function planExports(
  strategy: StrategyDefinition<Record<string, unknown>>,
  flags: ExportFlags & { root: string },
): ExportPlan {
  const { saveAdapter, saveModel, shardSize, adapterRank } = flags;
  const exporting = saveAdapter !== undefined || saveModel !== undefined;
  if (flags.mergeOnly && !exporting && flags.saveOnnx === undefined) {
    throw new SubmitError(
      "--merge-only needs --save-adapter DIR, --save-model DIR or --save-onnx DIR (where to write the merged result)",
    );
  }
  if (exporting && flags.saveOnnx !== undefined) {
    // --save-adapter and --save-model write the merge without building the ONNX model, which
    // --save-onnx exports.
    throw new SubmitError(
      `${saveAdapter !== undefined ? "--save-adapter" : "--save-model"} and --save-onnx: one kind of export per run (--save-onnx builds the ONNX model; the others write the merge without building it)`,
    );
  }
  for (const [flag, value] of [
    ["--save-adapter", saveAdapter],
    ["--save-model", saveModel],
  ] as const) {
    if (value !== undefined && !flags.mergeOnly) {
      throw new SubmitError(
        `${flag} is used with --merge-only: an evaluation run does not also export (the merge is deterministic, so a second command with the same config and seed exports the same model)`,
      );
    }
  }
  if (shardSize !== undefined && saveModel === undefined) {
    throw new SubmitError("--shard-size sets the shards of --save-model; pass --save-model DIR");
  }
  if (adapterRank !== undefined) {
    if (!Number.isInteger(adapterRank) || adapterRank <= 0) {
      throw new SubmitError(`--adapter-rank must be a positive integer, got ${adapterRank}`);
    }
    if (saveAdapter === undefined) {
      throw new SubmitError(
        "--adapter-rank sets the rank of --save-adapter; pass --save-adapter DIR",
      );
    }
  }
  const kind = strategy.resultKind;
  if (exporting && kind === "routed") {
    const flag = saveModel !== undefined ? "--save-model" : "--save-adapter";
    throw new SubmitError(
      `${flag}: method ${strategy.name} returns a routed mixture (its experts are applied per token by a router), which no single LoRA adapter and no static checkpoint can hold; it is exported as the ONNX model only (--save-onnx DIR writes it in the layout transformers.js loads). Pick a low-rank or dense method (--list-methods says which) to save an adapter or a checkpoint`,
    );
  }
  if (saveAdapter !== undefined && kind === "dense" && adapterRank === undefined) {
    throw new SubmitError(
      `--save-adapter: method ${strategy.name} gives dense deltas, which a LoRA adapter holds only approximately. Pass --adapter-rank N for an SVD-truncated adapter of rank N (the truncation error is reported), or --save-model DIR for the exact merged checkpoint, or pick a low-rank method (--list-methods says which)`,
    );
  }
  if (adapterRank !== undefined && kind === "lowrank") {
    throw new SubmitError(
      `--adapter-rank: method ${strategy.name} gives low-rank results, which --save-adapter saves exactly; --adapter-rank is for dense methods`,
    );
  }
  const adapterDir = saveAdapter === undefined ? null : resolveFrom(flags.root, saveAdapter);
  const modelDir = saveModel === undefined ? null : resolveFrom(flags.root, saveModel);
  if (
    adapterDir !== null &&
    modelDir !== null &&
    (nested(adapterDir, modelDir) || nested(modelDir, adapterDir))
  ) {
    throw new SubmitError(
      `--save-adapter ${adapterDir} and --save-model ${modelDir} overlap; give them separate folders`,
    );
  }
  return {
    saveOnnx: flags.saveOnnx === undefined ? null : resolveFrom(flags.root, flags.saveOnnx),
    saveAdapter: adapterDir,
    saveModel: modelDir,
    maxShardBytes: parseShardSize(shardSize ?? DEFAULT_SHARD_SIZE),
    adapterRank: adapterRank ?? null,
  };
}

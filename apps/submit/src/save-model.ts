import { copyFile, readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { MergeContext, MergeResult } from "@merge/strategies";
import {
  type SafetensorsCheckpoint,
  type TensorToWrite,
  encodeFromF32,
  writeShardedSafetensors,
  writeTextAtomic,
} from "@merge/tensor-io";
import { InternalError, SubmitError } from "./errors.js";
import { TOKENIZER_FILES, publishExportDir } from "./export-dir.js";
import { type LoadedExpert, type MergePlan, type MergeStats, mergeModule } from "./merge.js";
import type { ResolvedStrategy } from "./strategy.js";

/** What --save-model needs besides the merge inputs. */
export interface SaveModelOptions {
  /** The base's folder: config.json, generation_config.json and tokenizer files come from here. */
  baseDir: string;
  maxShardBytes: number;
  /** README.md model card. */
  card: string;
}

/** W += ΔW in place: W is out × in Float32, the sum of each element rounded once to Float32. */
export function addDelta(w: Float32Array, r: MergeResult): void {
  if (r.kind === "dense") {
    for (let i = 0; i < w.length; i++) w[i] = w[i]! + r.delta[i]!;
    return;
  }
  if (r.kind !== "lowrank") throw new InternalError(`a ${r.kind} result has no static weight`);
  const { A, B, rank, outFeatures: out, inFeatures: n } = r;
  const row = new Float64Array(n);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const b = B[o * rank + k]!;
      if (b === 0) continue;
      const a = k * n;
      for (let i = 0; i < n; i++) row[i]! += b * A[a + i]!;
    }
    const base = o * n;
    for (let i = 0; i < n; i++) w[base + i] = w[base + i]! + row[i]!;
  }
}

/**
 * generation_config.json for a base without one: what transformers' GenerationConfig
 * .from_model_config takes from config.json (the special token ids), marked as derived.
 */
function generationConfigFrom(config: Record<string, unknown>): string {
  const out: Record<string, unknown> = { _from_model_config: true };
  for (const key of ["bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"]) {
    if (config[key] !== undefined && config[key] !== null) out[key] = config[key];
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

/**
 * Writes the merged model as a transformers checkpoint folder (atomically, see
 * publishExportDir): every base tensor in the base's dtype, the merged modules as
 * W + ΔW computed in Float32 and rounded to that dtype (round-to-nearest-even, as torch's
 * .to(bfloat16)); sharded safetensors with model.safetensors.index.json; config.json,
 * generation_config.json and the tokenizer files of the base; README.md.
 *
 * Streams: the shard headers come from the base's shapes and dtypes, and each tensor is
 * read, merged and encoded only when the writer reaches it, so memory holds one module's
 * weight and merge result at a time, never the model.
 */
export async function saveMergedModel(
  dir: string,
  plan: MergePlan,
  experts: readonly LoadedExpert[],
  { strategy, hyper }: ResolvedStrategy,
  ctx: MergeContext,
  base: SafetensorsCheckpoint,
  opts: SaveModelOptions,
  stats: MergeStats,
): Promise<{ tensors: number; modules: number }> {
  const tensors: TensorToWrite[] = [];
  for (const name of base.names()) {
    const info = base.info(name);
    const module = name.endsWith(".weight") ? name.slice(0, -".weight".length) : undefined;
    const shape = module === undefined ? undefined : plan.get(module);
    if (shape === undefined) {
      tensors.push({
        name,
        dtype: info.dtype,
        shape: info.shape,
        data: () => base.readBytes(name),
      });
      continue;
    }
    const dtype = info.dtype;
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
      throw new SubmitError(
        `--save-model: base tensor ${name} is ${dtype}; merged weights are written as F32, F16 or BF16 only`,
        1,
        { where: { file: info.file, tensor: name } },
      );
    }
    tensors.push({
      name,
      dtype,
      shape: info.shape,
      data: async () => {
        const t0 = performance.now();
        const r = await mergeModule(module!, shape, experts, strategy, hyper, ctx);
        const w = await base.readF32(name);
        addDelta(w, r);
        stats.ms += performance.now() - t0;
        stats.modules++;
        return encodeFromF32(w, dtype);
      },
    });
  }
  const configText = await readFile(join(opts.baseDir, "config.json"), "utf8");
  await publishExportDir(dir, async (tmp) => {
    await writeShardedSafetensors(tmp, tensors, {
      maxShardBytes: opts.maxShardBytes,
      metadata: { format: "pt" },
    });
    if (stats.modules !== plan.size) {
      throw new InternalError(
        `--save-model wrote ${stats.modules} merged modules, the merge plan has ${plan.size}`,
      );
    }
    await writeTextAtomic(join(tmp, "config.json"), configText);
    const generation = join(opts.baseDir, "generation_config.json");
    if (existsSync(generation)) await copyFile(generation, join(tmp, "generation_config.json"));
    else {
      await writeTextAtomic(
        join(tmp, "generation_config.json"),
        generationConfigFrom(JSON.parse(configText) as Record<string, unknown>),
      );
    }
    for (const f of TOKENIZER_FILES) {
      if (existsSync(join(opts.baseDir, f))) await copyFile(join(opts.baseDir, f), join(tmp, f));
    }
    await writeTextAtomic(join(tmp, "README.md"), opts.card);
  });
  return { tensors: tensors.length, modules: stats.modules };
}

import { deriveSeed, randomizedSvd, relativeErrorToDense, svdToLowRank } from "@merge/lora";
import type { MergeContext } from "@merge/strategies";
import { writePeftAdapter, writeTextAtomic } from "@merge/tensor-io";
import { join } from "node:path";
import { InternalError, SubmitError } from "./errors.js";
import { publishExportDir } from "./export-dir.js";
import { type LoadedExpert, type MergePlan, type MergeStats, mergeModule } from "./merge.js";
import type { ResolvedStrategy } from "./strategy.js";

/** How well the SVD-truncated adapter of a dense result holds it. */
export interface AdapterTruncation {
  rank: number;
  /** ‖ΔW − B·A‖_F / ‖ΔW‖_F over all modules together (their squared norms summed). */
  relativeError: number;
  /** The same per module (0 for an all-zero ΔW), in module order. */
  modules: Array<{ module: string; relativeError: number }>;
}

/** Where the adapter's base is, as PEFT's adapter_config.json names it. */
export interface AdapterBase {
  /** base_model_name_or_path: the Hub repo id, or the base's absolute folder. */
  nameOrPath: string;
  /** PEFT's `revision` field: the Hub commit, when the base came from the Hub. */
  revision?: string;
}

/** What saveMergedAdapter needs besides the merge inputs. */
export interface SaveAdapterOptions {
  base: AdapterBase;
  /** Rank of the SVD truncation of dense results (planExports requires it for them). */
  adapterRank: number | null;
  /** README.md model card; called after the merge, with the truncation when there is one. */
  card: (truncation: AdapterTruncation | undefined) => string;
}

type ModuleToWrite = Parameters<typeof writePeftAdapter>[1]["modules"][number];

/**
 * Merges every module and writes the result as one PEFT LoRA adapter folder (atomically, see
 * publishExportDir; scale folded into the factors: alpha = r per module, so PEFT's alpha / r
 * scale is 1; modules of another rank than the largest get rank_pattern / alpha_pattern
 * entries from the writer). Low-rank results are written exactly; a dense result is replaced
 * by its rank-`adapterRank` truncated SVD (randomized, seeded per module), and the error that
 * costs is measured against the dense update and returned.
 */
export async function saveMergedAdapter(
  dir: string,
  plan: MergePlan,
  experts: readonly LoadedExpert[],
  { strategy, hyper }: ResolvedStrategy,
  ctx: MergeContext,
  opts: SaveAdapterOptions,
  stats: MergeStats,
): Promise<{ modules: number; maxRank: number; truncation: AdapterTruncation | undefined }> {
  const modules: ModuleToWrite[] = [];
  const ranks = new Map<string, number>();
  const truncated: AdapterTruncation["modules"] = [];
  let errorSq = 0;
  let normSq = 0;
  for (const [module, shape] of plan) {
    const t0 = performance.now();
    const r = await mergeModule(module, shape, experts, strategy, hyper, ctx);
    let factors: { A: Float32Array; B: Float32Array; rank: number } | undefined;
    if (r.kind === "lowrank") factors = r;
    else if (r.kind === "dense" && opts.adapterRank !== null) {
      const { outFeatures: m, inFeatures: n } = r;
      const svd = randomizedSvd(r.delta, m, n, opts.adapterRank, {
        seed: deriveSeed(ctx.seed, "save-adapter", module),
      });
      const lr = svdToLowRank(svd);
      const err = relativeErrorToDense(r.delta, lr);
      let norm = 0;
      for (const x of r.delta) norm += x * x;
      truncated.push({ module, relativeError: norm === 0 ? 0 : err });
      if (norm > 0) {
        errorSq += err * err * norm;
        normSq += norm;
      }
      factors = lr;
    } else {
      // planExports refuses --save-adapter for routed methods, and for dense ones without a rank.
      throw new InternalError(
        `${strategy.name} declares ${strategy.resultKind} results but returned a ${r.kind} result`,
        { module },
      );
    }
    stats.ms += performance.now() - t0;
    stats.modules++;
    if (factors.rank === 0) continue; // nothing to add for this module
    modules.push({
      module,
      A: factors.A,
      aShape: [factors.rank, shape.inFeatures],
      B: factors.B,
      bShape: [shape.outFeatures, factors.rank],
      alpha: factors.rank, // scale alpha / r = 1: the factors already hold the scale
    });
    ranks.set(module, factors.rank);
  }
  if (modules.length === 0) throw new SubmitError("--save-adapter: the merge produced no module");
  const truncation =
    opts.adapterRank === null
      ? undefined
      : {
          rank: opts.adapterRank,
          relativeError: normSq === 0 ? 0 : Math.sqrt(errorSq / normSq),
          modules: truncated,
        };
  const maxRank = Math.max(...ranks.values());
  const targetModules = [...new Set([...ranks.keys()].map((m) => m.split(".").at(-1)!))].sort();
  await publishExportDir(dir, async (tmp) => {
    await writePeftAdapter(tmp, {
      config: {
        r: maxRank,
        loraAlpha: maxRank,
        targetModules,
        useRslora: false,
        fanInFanOut: false,
        baseModelNameOrPath: opts.base.nameOrPath,
        ...(opts.base.revision !== undefined ? { raw: { revision: opts.base.revision } } : {}),
      },
      modules,
      dtype: "F32",
    });
    await writeTextAtomic(join(tmp, "README.md"), opts.card(truncation));
  });
  return { modules: modules.length, maxRank, truncation };
}

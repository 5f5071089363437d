import type { MergeContext } from "@merge/strategies";
import { writePeftAdapter } from "@merge/tensor-io";
import { InternalError, SubmitError } from "./errors.js";
import { type LoadedExpert, type MergePlan, type MergeStats, mergeModule } from "./merge.js";
import type { ResolvedStrategy } from "./strategy.js";

/**
 * Merges every module and writes the result as one PEFT LoRA adapter (scale folded into the
 * factors: alpha = r per module, so PEFT's alpha / r scale is 1; modules of another rank than
 * the largest get rank_pattern / alpha_pattern entries from the writer). Needs a strategy whose
 * results are low-rank; dense results cannot be stored as LoRA factors.
 */
export async function saveMergedAdapter(
  dir: string,
  plan: MergePlan,
  experts: readonly LoadedExpert[],
  { strategy, hyper }: ResolvedStrategy,
  ctx: MergeContext,
  baseModel: string,
  stats: MergeStats,
): Promise<{ modules: number; maxRank: number }> {
  const modules: Parameters<typeof writePeftAdapter>[1]["modules"] = [];
  const ranks = new Map<string, number>();
  for (const [module, shape] of plan) {
    const t0 = performance.now();
    const r = await mergeModule(module, shape, experts, strategy, hyper, ctx);
    stats.ms += performance.now() - t0;
    stats.modules++;
    // planRun refuses --save-adapter for methods that do not declare low-rank results.
    if (r.kind !== "lowrank") {
      throw new InternalError(
        `${strategy.name} declares ${strategy.resultKind} results but returned a ${r.kind} result`,
        { module },
      );
    }
    if (r.rank === 0) continue; // nothing to add for this module
    modules.push({
      module,
      A: r.A,
      aShape: [r.rank, r.inFeatures],
      B: r.B,
      bShape: [r.outFeatures, r.rank],
      alpha: r.rank, // scale alpha / r = 1: the strategy already folded the scale in
    });
    ranks.set(module, r.rank);
  }
  if (modules.length === 0) throw new SubmitError("--save-adapter: the merge produced no module");
  const maxRank = Math.max(...ranks.values());
  const targetModules = [...new Set([...ranks.keys()].map((m) => m.split(".").at(-1)!))].sort();
  await writePeftAdapter(dir, {
    config: {
      r: maxRank,
      loraAlpha: maxRank,
      targetModules,
      useRslora: false,
      fanInFanOut: false,
      baseModelNameOrPath: baseModel,
    },
    modules,
    dtype: "F32",
  });
  return { modules: modules.length, maxRank };
}

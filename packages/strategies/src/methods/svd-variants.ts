import { deriveSeed } from "@merge/lora";
import { defineStrategy, PARAMS, type ParamSpecs } from "../hyper.js";
import { toLowRank } from "../to-low-rank.js";
import type { StrategyDefinition } from "../types.js";
import { targetRank } from "./linear.js";

/**
 * `<name>_svd`: the strategy's result truncated to rank k (0 = largest expert rank, PEFT's
 * default) or to an energy fraction, as PEFT's `*_svd` combination types do.
 */
export function withSvdTruncation<H extends Record<string, unknown>>(
  base: StrategyDefinition<H>,
): StrategyDefinition<H & { rank: number; energy: number }> {
  type HS = H & { rank: number; energy: number };
  const params: ParamSpecs = { ...base.params, rank: PARAMS.rank, energy: PARAMS.energy };
  const strategy = defineStrategy({
    name: `${base.name}_svd`,
    description: `${base.name}, then truncated to its best rank-k approximation (randomized SVD for dense results, exact factor-space SVD for low-rank ones); rank 0 = largest expert rank.`,
    reference: `PEFT add_weighted_adapter(combination_type='${base.name}_svd')${base.reference ? `; ${base.reference}` : ""}`,
    params,
    resultKind: "lowrank",
    run(input, h, ctx) {
      const { rank, energy, ...rest } = h as unknown as HS;
      const result = base.merge(input, rest as unknown as H, ctx);
      return toLowRank(result, {
        rank: targetRank(input, rank),
        energy,
        seed: deriveSeed(ctx.seed, "svd", input.module),
      }).factors;
    },
  });
  return strategy as unknown as StrategyDefinition<HS>;
}

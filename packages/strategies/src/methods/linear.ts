import {
  chooseRank,
  concatenate,
  type LowRank,
  lowRankSvd,
  svdToLowRank,
  truncateSvd,
} from "@merge/lora";
import { defineStrategy, expertWeights, PARAMS } from "../hyper.js";
import { lowRankResult } from "../to-low-rank.js";
import { type ModuleMergeInput, StrategyError } from "../types.js";

/** Σ_i c_i ΔW_i as exact factors of rank Σ r_i (the shared core of linear/TA/cat/svd). */
export function weightedSumFactors(
  input: ModuleMergeInput,
  coefficients: readonly number[],
): LowRank {
  return concatenate(input.experts, {
    outFeatures: input.outFeatures,
    inFeatures: input.inFeatures,
    weights: coefficients,
    module: input.module,
  });
}

export const linear = defineStrategy({
  name: "linear",
  resultKind: "lowrank",
  description:
    "Weighted average Σ w_i ΔW_i / Σ w_i of the experts' full updates (not PEFT's factor-wise 'linear'), returned exactly as rank-Σr factors.",
  reference:
    "Wortsman et al. 2022, Model soups (uniform averaging); weights from the merge context, default 1 each",
  params: { normalize: PARAMS.normalize },
  run(input, hyper, ctx) {
    const w = expertWeights(input, ctx);
    let coefficients = w;
    if (hyper.normalize && input.experts.some((e) => e !== null)) {
      const total = w.reduce((a, b) => a + b, 0);
      if (total === 0)
        throw new StrategyError("linear: expert weights sum to 0, cannot normalise", input.module);
      coefficients = w.map((x) => x / total);
    }
    return lowRankResult(weightedSumFactors(input, coefficients));
  },
});

export const taskArithmetic = defineStrategy({
  name: "task_arithmetic",
  resultKind: "lowrank",
  description: "λ · Σ w_i ΔW_i (task vectors added), exact rank-Σr factors.",
  reference:
    "Ilharco et al. 2023, Editing models with task arithmetic (ICLR). The paper tunes λ on validation data; we do not, and default to λ = 1 (the plain sum).",
  params: { lambda: PARAMS.lambda },
  run(input, hyper, ctx) {
    const w = expertWeights(input, ctx);
    return lowRankResult(
      weightedSumFactors(
        input,
        w.map((x) => hyper.lambda * x),
      ),
    );
  },
});

export const cat = defineStrategy({
  name: "cat",
  resultKind: "lowrank",
  description:
    "Exact concatenation of the experts' factors: ΔW = Σ w_i ΔW_i with rank Σ r_i (PEFT's 'cat'). Never forms an out×in matrix.",
  reference: "PEFT add_weighted_adapter(combination_type='cat')",
  params: {},
  run(input, _hyper, ctx) {
    return lowRankResult(weightedSumFactors(input, expertWeights(input, ctx)));
  },
});

export const svd = defineStrategy({
  name: "svd",
  resultKind: "lowrank",
  description:
    "Σ w_i ΔW_i truncated to its best rank-k approximation, computed exactly in factor space (QR of both factors + SVD of the Σr×Σr core).",
  reference:
    "PEFT add_weighted_adapter(combination_type='svd'); rank 0 = the largest expert rank, PEFT's default",
  params: { rank: PARAMS.rank, energy: PARAMS.energy },
  run(input, hyper, ctx) {
    const sum = weightedSumFactors(input, expertWeights(input, ctx));
    const s = lowRankSvd(sum);
    const k = chooseRank(s.S, { rank: targetRank(input, hyper.rank), energy: hyper.energy });
    return { kind: "lowrank", ...svdToLowRank(truncateSvd(s, k)) };
  },
});

/** `rank`, or the largest rank among the experts when `rank` is 0 (PEFT's svd default). */
export function targetRank(input: ModuleMergeInput, rank: number): number {
  if (rank > 0) return rank;
  return input.experts.reduce((k, e) => Math.max(k, e?.rank ?? 0), 0);
}

import { type DropMaskSource, seededDropMasks } from "../drop-mask.js";
import { type ElementwiseSpec, mergeElementwise } from "../elementwise.js";
import { defineStrategy, expertWeights, PARAMS } from "../hyper.js";
import {
  type MergeContext,
  type MergeResult,
  type ModuleMergeInput,
  StrategyError,
} from "../types.js";

const SIGN_CHOICES = ["total", "frequency"] as const;
type MajoritySign = (typeof SIGN_CHOICES)[number];
const MAJORITY_SIGN = {
  type: "string",
  default: "total",
  choices: SIGN_CHOICES,
  description: "sign election by total mass or by count",
} as const;

export interface TiesHyper extends Record<string, unknown> {
  density: number;
  lambda: number;
  majoritySign: string;
}
export interface DareHyper extends Record<string, unknown> {
  p: number;
  lambda: number;
}
export interface DareTiesHyper extends Record<string, unknown> {
  p: number;
  lambda: number;
  majoritySign: string;
}
export interface DareLinearHyper extends Record<string, unknown> {
  p: number;
  normalize: boolean;
}

function normalisingScale(name: string, input: ModuleMergeInput, w: number[]): number {
  // With no expert present the result is zero whatever the scale.
  if (input.experts.every((e) => e === null)) return 1;
  const total = w.reduce((a, b) => a + b, 0);
  if (total === 0)
    throw new StrategyError(`${name}: expert weights sum to 0, cannot normalise`, input.module);
  return 1 / total;
}

export const ties = defineStrategy({
  name: "ties",
  resultKind: "dense",
  description:
    "TIES-merging on the full updates: keep each expert's top-density entries by magnitude, elect each entry's sign by total mass Σ w_i τ̂_i, average the agreeing entries (disjoint mean), scale by λ. Dense result.",
  reference:
    "Yadav et al. 2023, TIES-Merging (NeurIPS): top-k = 20% and λ = 1 are the paper's defaults when no validation set is used",
  params: { density: PARAMS.density, lambda: PARAMS.lambda, majoritySign: MAJORITY_SIGN },
  run(input, h, ctx) {
    return mergeElementwise(input, {
      weights: expertWeights(input, ctx),
      trimDensity: h.density,
      combine: "disjoint_mean",
      majoritySign: h.majoritySign as MajoritySign,
      outputScale: h.lambda,
    });
  },
});

export const magnitudePrune = defineStrategy({
  name: "magnitude_prune",
  resultKind: "dense",
  description:
    "Keep each expert's top-density entries by magnitude, then λ · Σ w_i τ̂_i (no sign election). Dense result.",
  reference: "PEFT add_weighted_adapter(combination_type='magnitude_prune'); density 0.2 as TIES",
  params: { density: PARAMS.density, lambda: PARAMS.lambda },
  run(input, h, ctx) {
    return mergeElementwise(input, {
      weights: expertWeights(input, ctx),
      trimDensity: h.density,
      combine: "sum",
      outputScale: h.lambda,
    });
  },
});

/** The DARE variants' shared step: drop-and-rescale with `masks` at rate p, then `combination`. */
function mergeDropped(
  input: ModuleMergeInput,
  weights: readonly number[],
  p: number,
  masks: DropMaskSource,
  combination: Pick<ElementwiseSpec, "combine" | "majoritySign" | "outputScale">,
): MergeResult {
  return mergeElementwise(input, { weights, drop: { p, masks }, ...combination });
}

/** DARE + task arithmetic: λ · Σ w_i · mask_i ⊙ ΔW_i / (1 − p). `masks` defaults to seeded ones. */
export function mergeDare(
  input: ModuleMergeInput,
  h: DareHyper,
  ctx: MergeContext,
  masks: DropMaskSource = seededDropMasks(ctx.seed, input.module, h.p),
): MergeResult {
  return mergeDropped(input, expertWeights(input, ctx), h.p, masks, {
    combine: "sum",
    outputScale: h.lambda,
  });
}

/** DARE + weighted sum (normalised by Σ w_i when `normalize`; PEFT's dare_linear does not). */
export function mergeDareLinear(
  input: ModuleMergeInput,
  h: DareLinearHyper,
  ctx: MergeContext,
  masks: DropMaskSource = seededDropMasks(ctx.seed, input.module, h.p),
): MergeResult {
  const w = expertWeights(input, ctx);
  return mergeDropped(input, w, h.p, masks, {
    combine: "sum",
    outputScale: h.normalize ? normalisingScale("dare_linear", input, w) : 1,
  });
}

/** DARE, then TIES sign election and disjoint mean (no magnitude trim), scaled by λ. */
export function mergeDareTies(
  input: ModuleMergeInput,
  h: DareTiesHyper,
  ctx: MergeContext,
  masks: DropMaskSource = seededDropMasks(ctx.seed, input.module, h.p),
): MergeResult {
  return mergeDropped(input, expertWeights(input, ctx), h.p, masks, {
    combine: "disjoint_mean",
    majoritySign: h.majoritySign as MajoritySign,
    outputScale: h.lambda,
  });
}

const DARE_REF =
  "Yu et al. 2024, Language Models are Super Mario (DARE, ICML): drop rate p = 0.9 keeps SFT ability in the paper's experiments; rescale 1/(1−p)";

export const dare = defineStrategy({
  name: "dare",
  resultKind: "dense",
  description:
    "DARE: drop each entry of each ΔW_i with probability p (seeded), rescale by 1/(1−p), then λ · Σ w_i. Dense.",
  reference: DARE_REF,
  params: { p: PARAMS.p, lambda: PARAMS.lambda },
  run: (input, h, ctx) => mergeDare(input, h, ctx),
});

export const dareLinear = defineStrategy({
  name: "dare_linear",
  resultKind: "dense",
  description:
    "DARE drop-and-rescale, then the weighted average Σ w_i ΔW_i / Σ w_i (normalize=false gives PEFT's dare_linear, Σ w_i). Dense.",
  reference: DARE_REF,
  params: { p: PARAMS.p, normalize: PARAMS.normalize },
  run: (input, h, ctx) => mergeDareLinear(input, h, ctx),
});

export const dareTies = defineStrategy({
  name: "dare_ties",
  resultKind: "dense",
  description:
    "DARE drop-and-rescale, then TIES sign election by total mass and disjoint mean, λ. Dense.",
  reference: `${DARE_REF}; sign election and disjoint mean from Yadav et al. 2023`,
  params: { p: PARAMS.p, lambda: PARAMS.lambda, majoritySign: MAJORITY_SIGN },
  run: (input, h, ctx) => mergeDareTies(input, h, ctx),
});

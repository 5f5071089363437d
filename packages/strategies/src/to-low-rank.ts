import {
  chooseRank,
  deriveSeed,
  lowRankSvd,
  randomizedSvd,
  relativeErrorToDense,
  svdToLowRank,
  truncateSvd,
  truncationError,
} from "@merge/lora";
import { type MergeResult, StrategyError } from "./types.js";

export interface LowRankMergeResult {
  kind: "lowrank";
  A: Float32Array;
  B: Float32Array;
  rank: number;
  outFeatures: number;
  inFeatures: number;
}

export interface ToLowRankOptions {
  /** Largest rank to keep. */
  rank: number;
  /** Keep the fewest leading components reaching this fraction of ‖ΔW‖²_F (default 1 = all). */
  energy?: number;
  /** Seed of the randomized SVD used for dense results. */
  seed?: number;
  /** Randomized SVD oversampling and power iterations for dense results (defaults 10 and 2). */
  oversample?: number;
  powerIterations?: number;
}

/**
 * Any merge result as rank ≤ k LoRA factors (ΔW ≈ B·A, scale 1: write them with
 * lora_alpha = r), with the relative Frobenius error ‖ΔW − B·A‖/‖ΔW‖ of doing so.
 * Low-rank results are truncated exactly through their factor-space SVD; dense results through a
 * randomized SVD, whose error is then measured exactly against the dense matrix.
 */
export function toLowRank(
  result: MergeResult,
  opts: ToLowRankOptions,
): { factors: LowRankMergeResult; relativeError: number } {
  const { rank, energy = 1 } = opts;
  if (!Number.isInteger(rank) || rank < 0)
    throw new StrategyError(`rank must be a non-negative integer, got ${rank}`);
  const { outFeatures: m, inFeatures: n } = result;
  if (result.kind === "lowrank") {
    if (result.rank <= rank && energy >= 1) return { factors: result, relativeError: 0 };
    const svd = lowRankSvd(result);
    const k = chooseRank(svd.S, { rank, energy });
    const f = svdToLowRank(truncateSvd(svd, k));
    return { factors: { kind: "lowrank", ...f }, relativeError: truncationError(svd.S, k) };
  }
  const svd = randomizedSvd(result.delta, m, n, rank, {
    seed: opts.seed ?? deriveSeed(0, "to-low-rank"),
    ...(opts.oversample === undefined ? {} : { oversample: opts.oversample }),
    ...(opts.powerIterations === undefined ? {} : { powerIterations: opts.powerIterations }),
  });
  const k = chooseRank(svd.S, { rank, energy });
  const f = svdToLowRank(truncateSvd(svd, k));
  return {
    factors: { kind: "lowrank", ...f },
    relativeError: relativeErrorToDense(result.delta, f),
  };
}

/** A Float64 (or Float32) low-rank pair as a MergeResult with Float32 factors. */
export function lowRankResult(f: {
  A: ArrayLike<number>;
  B: ArrayLike<number>;
  rank: number;
  outFeatures: number;
  inFeatures: number;
}): LowRankMergeResult {
  return {
    kind: "lowrank",
    A: Float32Array.from(f.A),
    B: Float32Array.from(f.B),
    rank: f.rank,
    outFeatures: f.outFeatures,
    inFeatures: f.inFeatures,
  };
}

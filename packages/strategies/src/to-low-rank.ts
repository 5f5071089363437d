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

/** The low-rank arm of MergeResult: ΔW = B·A, scale folded in. */
export type LowRankMergeResult = Extract<MergeResult, { kind: "lowrank" }>;

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
  if (result.kind === "routed") {
    throw new StrategyError(
      "a routed result has no single low-rank update (its experts are applied per token); export it as the ONNX model, or merge with a static method",
    );
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

/**
 * LoRA factors from chosen directions of a factorisation U·diag(·)·Vᵀ (U: m × q, V: n × q,
 * row-major): column c of B is value_c · U[:, k_c] and row c of A is aScale · V[:, k_c]ᵀ.
 */
export function factorsFromDirections(
  U: ArrayLike<number>,
  V: ArrayLike<number>,
  q: number,
  directions: ReadonlyArray<{ k: number; value: number }>,
  outFeatures: number,
  inFeatures: number,
  aScale = 1,
): LowRankMergeResult {
  const m = outFeatures;
  const n = inFeatures;
  const rank = directions.length;
  const B = new Float32Array(m * rank);
  const A = new Float32Array(rank * n);
  for (let c = 0; c < rank; c++) {
    const { k, value } = directions[c]!;
    for (let i = 0; i < m; i++) B[i * rank + c] = U[i * q + k]! * value;
    for (let j = 0; j < n; j++) A[c * n + j] = aScale * V[j * q + k]!;
  }
  return { kind: "lowrank", A, B, rank, outFeatures: m, inFeatures: n };
}

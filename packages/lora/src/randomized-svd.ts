import { LoraError } from "./errors.js";
import { emptySvd, type LowRank, type LowRankSvd, truncateSvd } from "./factor.js";
import { matmul, matmulTransA, smallSvd, thinQr } from "./linalg.js";
import { Rng } from "./random.js";

export interface RandomizedSvdOptions {
  /** Extra sample columns beyond k (Halko et al. 2011 recommend 5–10). Default 10. */
  oversample?: number;
  /** Subspace (power) iterations, each re-orthonormalised. Default 2. */
  powerIterations?: number;
  seed?: number;
}

/**
 * Rank-k SVD of a dense row-major m × n matrix by randomized range finding with subspace
 * iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4 + 5.1). O(m·n·(k + p)) per pass, Float64
 * accumulation. Exact (to rounding) when k + oversample ≥ min(m, n), since the sampled range is
 * then the whole range of the matrix.
 */
export function randomizedSvd(
  dense: Float32Array,
  m: number,
  n: number,
  k: number,
  opts: RandomizedSvdOptions = {},
): LowRankSvd {
  if (dense.length !== m * n)
    throw new LoraError(`dense matrix has ${dense.length} values, expected ${m}×${n}`);
  if (!Number.isInteger(k) || k < 0)
    throw new LoraError(`rank must be a non-negative integer, got ${k}`);
  const l = Math.min(k + (opts.oversample ?? 10), m, n);
  const kk = Math.min(k, l);
  if (kk === 0) {
    return emptySvd(m, n);
  }
  const rng = new Rng(opts.seed ?? 0);
  const omega = new Float64Array(n * l);
  for (let i = 0; i < omega.length; i++) omega[i] = rng.nextGaussian();
  let q = thinQr(matmul(dense, omega, m, n, l), m, l).q;
  for (let it = 0; it < (opts.powerIterations ?? 2); it++) {
    const z = thinQr(matmulTransA(dense, q, m, n, l), n, l).q;
    q = thinQr(matmul(dense, z, m, n, l), m, l).q;
  }
  // Small = Qᵀ·D (l × n), stored transposed (n × l) so the SVD works on its tall side.
  const smallT = matmulTransA(dense, q, m, n, l);
  const svd = smallSvd(smallT, n, l); // smallT = V_s S U_sᵀ  ⇒  QᵀD = U_s S V_sᵀ
  const U = matmul(q, svd.v, m, l, svd.q);
  const full = { U, S: svd.s, V: svd.u, rank: svd.q, outFeatures: m, inFeatures: n };
  return truncateSvd(full, kk);
}

/** ‖D − B·A‖_F / ‖D‖_F computed exactly, row by row (0 when D = 0 and B·A = 0). */
export function relativeErrorToDense(dense: Float32Array, f: LowRank): number {
  const { outFeatures: m, inFeatures: n, rank: r, A, B } = f;
  if (dense.length !== m * n)
    throw new LoraError(`dense matrix has ${dense.length} values, expected ${m}×${n}`);
  let num = 0;
  let den = 0;
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k]!;
      if (b === 0) continue;
      for (let j = 0; j < n; j++) row[j]! += b * A[k * n + j]!;
    }
    for (let j = 0; j < n; j++) {
      const d = dense[i * n + j]!;
      const e = d - row[j]!;
      num += e * e;
      den += d * d;
    }
  }
  if (den === 0) return num === 0 ? 0 : Number.POSITIVE_INFINITY;
  return Math.sqrt(num / den);
}

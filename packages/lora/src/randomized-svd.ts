import { LoraError } from "./errors.js";
import type { LowRank, LowRankSvd } from "./factor.js";
import { matmul, smallSvd, thinQr } from "./linalg.js";
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
    return {
      U: new Float64Array(0),
      S: new Float64Array(0),
      V: new Float64Array(0),
      rank: 0,
      outFeatures: m,
      inFeatures: n,
    };
  }
  const rng = new Rng(opts.seed ?? 0);
  const omega = new Float64Array(n * l);
  for (let i = 0; i < omega.length; i++) omega[i] = rng.nextGaussian();
  let q = thinQr(denseTimes(dense, m, n, omega, l), m, l).q;
  for (let it = 0; it < (opts.powerIterations ?? 2); it++) {
    const z = thinQr(denseTransposeTimes(dense, m, n, q, l), n, l).q;
    q = thinQr(denseTimes(dense, m, n, z, l), m, l).q;
  }
  // Small = Qᵀ·D (l × n), stored transposed (n × l) so the SVD works on its tall side.
  const smallT = denseTransposeTimes(dense, m, n, q, l);
  const svd = smallSvd(smallT, n, l); // smallT = V_s S U_sᵀ  ⇒  QᵀD = U_s S V_sᵀ
  const U = matmul(q, svd.v, m, l, svd.q);
  const keepU = new Float64Array(m * kk);
  const keepV = new Float64Array(n * kk);
  for (let i = 0; i < m; i++) for (let c = 0; c < kk; c++) keepU[i * kk + c] = U[i * svd.q + c]!;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < kk; c++) keepV[i * kk + c] = svd.u[i * svd.q + c]!;
  return { U: keepU, S: svd.s.slice(0, kk), V: keepV, rank: kk, outFeatures: m, inFeatures: n };
}

/** D·X with D: m×n Float32, X: n×l Float64 (row-major) → m×l. */
function denseTimes(
  d: Float32Array,
  m: number,
  n: number,
  x: Float64Array,
  l: number,
): Float64Array {
  const y = new Float64Array(m * l);
  for (let i = 0; i < m; i++) {
    const di = i * n;
    const yi = i * l;
    for (let j = 0; j < n; j++) {
      const v = d[di + j]!;
      if (v === 0) continue;
      const xj = j * l;
      for (let c = 0; c < l; c++) y[yi + c]! += v * x[xj + c]!;
    }
  }
  return y;
}

/** Dᵀ·X with D: m×n Float32, X: m×l Float64 → n×l. */
function denseTransposeTimes(
  d: Float32Array,
  m: number,
  n: number,
  x: Float64Array,
  l: number,
): Float64Array {
  const y = new Float64Array(n * l);
  for (let i = 0; i < m; i++) {
    const di = i * n;
    const xi = i * l;
    for (let j = 0; j < n; j++) {
      const v = d[di + j]!;
      if (v === 0) continue;
      const yj = j * l;
      for (let c = 0; c < l; c++) y[yj + c]! += v * x[xi + c]!;
    }
  }
  return y;
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

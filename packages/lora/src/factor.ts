import { LoraError } from "./errors.js";
import { type Floats, matmul, matmulTransB, smallSvd, thinQr } from "./linalg.js";
import { type LoraModule, validateLoraModule } from "./module.js";

/** ΔW = B·A with A: rank × inFeatures, B: outFeatures × rank (row-major, any scale folded in). */
export interface LowRank {
  A: Floats;
  B: Floats;
  rank: number;
  outFeatures: number;
  inFeatures: number;
}

/** ΔW = U·diag(S)·Vᵀ with U: out × rank, V: in × rank (row-major), S descending. */
export interface LowRankSvd {
  U: Float64Array;
  S: Float64Array;
  V: Float64Array;
  rank: number;
  outFeatures: number;
  inFeatures: number;
}

/**
 * Exact concatenation: Σ_i w_i · scale_i · B_i·A_i as one LowRank of rank Σ r_i (Float64).
 * Like PEFT's `cat`, weight and scale are folded into the A rows. `null` (an expert without
 * this module) contributes nothing.
 */
export function concatenate(
  modules: ReadonlyArray<LoraModule | null>,
  dims: { outFeatures: number; inFeatures: number; weights?: readonly number[]; module?: string },
): LowRank {
  const { outFeatures: m, inFeatures: n, weights, module } = dims;
  if (weights !== undefined && weights.length !== modules.length) {
    throw new LoraError(`${weights.length} weights for ${modules.length} experts`, module);
  }
  let total = 0;
  modules.forEach((e, i) => {
    if (e === null) return;
    validateLoraModule(e, module === undefined ? `expert ${i}` : `${module} (expert ${i})`);
    if (e.outFeatures !== m || e.inFeatures !== n) {
      throw new LoraError(
        `expert ${i} is ${e.outFeatures}×${e.inFeatures}, expected ${m}×${n}`,
        module,
      );
    }
    total += e.rank;
  });
  const A = new Float64Array(total * n);
  const B = new Float64Array(m * total);
  let offset = 0;
  modules.forEach((e, i) => {
    if (e === null) return;
    const f = (weights?.[i] ?? 1) * e.scale;
    const r = e.rank;
    for (let k = 0; k < r; k++) {
      const src = k * n;
      const dst = (offset + k) * n;
      for (let j = 0; j < n; j++) A[dst + j] = f * e.A[src + j]!;
    }
    for (let row = 0; row < m; row++) {
      for (let k = 0; k < r; k++) B[row * total + offset + k] = e.B[row * r + k]!;
    }
    offset += r;
  });
  return { A, B, rank: total, outFeatures: m, inFeatures: n };
}

/** The rank-0 SVD of an m × n zero matrix. */
export function emptySvd(m: number, n: number): LowRankSvd {
  return {
    U: new Float64Array(0),
    S: new Float64Array(0),
    V: new Float64Array(0),
    rank: 0,
    outFeatures: m,
    inFeatures: n,
  };
}

/**
 * Exact thin SVD of B·A without forming it: B = Q_b R_b, Aᵀ = Q_a R_a, then the SVD of the
 * small core R_b R_aᵀ = U_k S V_kᵀ gives U = Q_b U_k, V = Q_a V_k. O((m + n)·r²) time and memory.
 * The result has min(m, n, r) components; trailing ones may be (numerically) zero.
 */
export function lowRankSvd(f: LowRank): LowRankSvd {
  const { A, B, rank: r, outFeatures: m, inFeatures: n } = f;
  if (A.length !== r * n || B.length !== m * r) {
    throw new LoraError(
      `factor sizes A=${A.length}, B=${B.length} do not match rank ${r}, ${m}×${n}`,
    );
  }
  if (r === 0 || m === 0 || n === 0) {
    return emptySvd(m, n);
  }
  const qb = thinQr(B, m, r);
  const qa = thinQr(A, n, r, true);
  const core = matmulTransB(qb.r, qa.r, qb.p, r, qa.p); // R_b · R_aᵀ : p_b × p_a
  const svd = smallSvd(core, qb.p, qa.p);
  const U = matmul(qb.q, svd.u, m, qb.p, svd.q);
  const V = matmul(qa.q, svd.v, n, qa.p, svd.q);
  return { U, S: svd.s, V, rank: svd.q, outFeatures: m, inFeatures: n };
}

/**
 * How many leading components to keep: at most `rank`, and the fewest whose squared singular
 * values reach `energy` (a fraction of Σ s², 1 = all). Exactly-zero components are never kept.
 * Throws a LoraError on NaN/±Inf in S instead of silently choosing rank 0.
 */
export function chooseRank(
  S: ArrayLike<number>,
  opts: { rank?: number; energy?: number } = {},
): number {
  const energy = opts.energy ?? 1;
  if (!(energy >= 0 && energy <= 1)) throw new LoraError(`energy must be in [0, 1], got ${energy}`);
  const cap = opts.rank ?? S.length;
  if (!Number.isInteger(cap) || cap < 0)
    throw new LoraError(`rank must be a non-negative integer, got ${cap}`);
  let total = 0;
  let nonzero = 0;
  for (let i = 0; i < S.length; i++) {
    // NaN fails every comparison below and would silently select rank 0.
    if (!Number.isFinite(S[i]!)) {
      throw new LoraError(
        `singular value ${i} is ${S[i]}, expected a finite number (non-finite input factors?)`,
      );
    }
    total += S[i]! * S[i]!;
    if (S[i]! > 0) nonzero = i + 1;
  }
  let k = Math.min(cap, nonzero);
  if (energy < 1 && total > 0) {
    let acc = 0;
    for (let i = 0; i < k; i++) {
      acc += S[i]! * S[i]!;
      if (acc >= energy * total) {
        k = i + 1;
        break;
      }
    }
  }
  return k;
}

/** The first k components of an SVD. */
export function truncateSvd(svd: LowRankSvd, k: number): LowRankSvd {
  if (!Number.isInteger(k) || k < 0 || k > svd.rank) {
    throw new LoraError(`cannot keep ${k} of ${svd.rank} components`);
  }
  const { rank: r, outFeatures: m, inFeatures: n } = svd;
  const U = new Float64Array(m * k);
  const V = new Float64Array(n * k);
  for (let i = 0; i < m; i++) for (let c = 0; c < k; c++) U[i * k + c] = svd.U[i * r + c]!;
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) V[i * k + c] = svd.V[i * r + c]!;
  return { U, S: svd.S.slice(0, k), V, rank: k, outFeatures: m, inFeatures: n };
}

/** Relative Frobenius error of keeping the first k components: √(Σ_{i≥k} s²/Σ s²). */
export function truncationError(S: ArrayLike<number>, k: number): number {
  let total = 0;
  let dropped = 0;
  for (let i = 0; i < S.length; i++) {
    const s2 = S[i]! * S[i]!;
    total += s2;
    if (i >= k) dropped += s2;
  }
  return total === 0 ? 0 : Math.sqrt(dropped / total);
}

/** LoRA factors (Float32) of an SVD: B = U·diag(S), A = Vᵀ, so B·A = U S Vᵀ with scale 1. */
export function svdToLowRank(svd: LowRankSvd): LowRank & { A: Float32Array; B: Float32Array } {
  const { rank: k, outFeatures: m, inFeatures: n } = svd;
  const B = new Float32Array(m * k);
  const A = new Float32Array(k * n);
  for (let i = 0; i < m; i++)
    for (let c = 0; c < k; c++) B[i * k + c] = svd.U[i * k + c]! * svd.S[c]!;
  for (let c = 0; c < k; c++) for (let j = 0; j < n; j++) A[c * n + j] = svd.V[j * k + c]!;
  return { A, B, rank: k, outFeatures: m, inFeatures: n };
}

import {
  chooseRank,
  concatenate,
  lowRankSvd,
  matmul,
  matmulTransA,
  matmulTransB,
  smallSvd,
  symmetricEigen,
} from "@merge/lora";
import { defineStrategy, expertWeights, PARAMS } from "../hyper.js";
import type { MergeContext, MergeResult, ModuleMergeInput } from "../types.js";
import { factorsFromDirections } from "../to-low-rank.js";

/** Directions with s_k ≤ this fraction of s_0 are numerically absent and are dropped. */
export const SINGULAR_TOLERANCE = 1e-10;

/** Eigenvalues of E below this fraction of the largest are floored before E^(−1/2) (roundoff guard). */
const ENERGY_FLOOR = 1e-30;

/** A sharing operator T = Q·diag(t)·Qᵀ (q × q), its eigenvalues clamped to [1, N_active]. */
export interface OsmSharing {
  /** t_k: effective number of experts sharing eigen-direction k of T, descending, in [1, N_active]. */
  sharing: Float64Array;
  /** q × q row-major; column k is the eigenvector of sharing[k], in the joint (U or V) basis. */
  vectors: Float64Array;
}

export interface OsmAnalysis {
  /** Singular values s_k of ΔW_sum = Σ w_i ΔW_i over the kept (non-zero) directions, descending. */
  singularValues: Float64Array;
  /** U (out × q) and V (in × q), row-major, of the kept directions. */
  U: Float64Array;
  V: Float64Array;
  /** Experts with a non-zero update on the kept directions: the upper clamp of the sharing. */
  activeExperts: number;
  /** T_L = E_L^(−1/2) S² E_L^(−1/2) with E_L = Σ_i C_i C_iᵀ: sharing of output directions. */
  left: OsmSharing;
  /** T_R = E_R^(−1/2) S² E_R^(−1/2) with E_R = Σ_i C_iᵀ C_i: sharing of input directions. */
  right: OsmSharing;
}

/** Q·diag(f(λ))·Qᵀ of a symmetric q × q matrix given its eigenvectors (columns of Q). */
function spectralFunction(
  vectors: Float64Array,
  values: ArrayLike<number>,
  q: number,
): Float64Array {
  const scaled = new Float64Array(q * q);
  for (let i = 0; i < q; i++)
    for (let k = 0; k < q; k++) scaled[i * q + k] = vectors[i * q + k]! * values[k]!;
  return matmulTransB(scaled, vectors, q, q, q);
}

/**
 * T = E^(−1/2)·S²·E^(−1/2) for the expert-energy matrix E (q × q, symmetric positive definite on
 * the kept directions since S² ≼ N·E), eigendecomposed, its eigenvalues clamped to [1, nActive]:
 * below 1 would amplify experts that cancel, above N is roundoff (Cauchy–Schwarz bounds it).
 */
function sharingOperator(
  energy: Float64Array,
  s: Float64Array,
  q: number,
  nActive: number,
): OsmSharing {
  const e = symmetricEigen(energy, q);
  const top = q > 0 ? Math.max(e.values[0]!, 0) : 0;
  const invSqrt = Float64Array.from(
    e.values,
    (l) => 1 / Math.sqrt(Math.max(l, top * ENERGY_FLOOR, Number.MIN_VALUE)),
  );
  const root = spectralFunction(e.vectors, invSqrt, q); // E^(−1/2)
  // T = R·S²·R with R = E^(−1/2): scale R's columns by s², then multiply by R.
  const rs = new Float64Array(q * q);
  for (let i = 0; i < q; i++)
    for (let k = 0; k < q; k++) rs[i * q + k] = root[i * q + k]! * s[k]! * s[k]!;
  const t = symmetricEigen(matmul(rs, root, q, q, q), q);
  const hi = Math.max(nActive, 1);
  return { sharing: t.values.map((x) => Math.min(Math.max(x, 1), hi)), vectors: t.vectors };
}

/**
 * Steps 1–3 of OSM: the exact SVD of ΔW_sum in factor space, each expert's coefficients
 * C_i = Uᵀ(w_iΔW_i)V in that basis, the expert-energy matrices E_L, E_R and the sharing operators
 * T_L, T_R. Cost O((m + n)·R² + R³) with R = Σ r_i.
 */
export function osmAnalyse(input: ModuleMergeInput, ctx: MergeContext): OsmAnalysis {
  const { outFeatures: m, inFeatures: n, experts, module } = input;
  const w = expertWeights(input, ctx);
  const sum = concatenate(experts, { outFeatures: m, inFeatures: n, weights: w, module });
  const svd = lowRankSvd(sum);
  const s0 = svd.rank > 0 ? svd.S[0]! : 0;
  let q = 0;
  while (q < svd.rank && svd.S[q]! > SINGULAR_TOLERANCE * s0) q++;
  const U = new Float64Array(m * q);
  const V = new Float64Array(n * q);
  for (let i = 0; i < m; i++) for (let c = 0; c < q; c++) U[i * q + c] = svd.U[i * svd.rank + c]!;
  for (let j = 0; j < n; j++) for (let c = 0; c < q; c++) V[j * q + c] = svd.V[j * svd.rank + c]!;
  const s = svd.S.slice(0, q);
  const energyLeft = new Float64Array(q * q);
  const energyRight = new Float64Array(q * q);
  let activeExperts = 0;
  experts.forEach((e, i) => {
    if (e === null || e.rank === 0 || q === 0) return;
    const r = e.rank;
    const f = w[i]! * e.scale;
    if (f === 0) return;
    // C_i = L_i·R_i with L_i = f·Uᵀ B_i (q × r) and R_i = A_i V (r × q). Then
    // C_i C_iᵀ = L_i (R_i R_iᵀ) L_iᵀ and C_iᵀ C_i = R_iᵀ (L_iᵀ L_i) R_i through r × r cores:
    // O(q²·r) per expert instead of O(q³).
    const left = matmulTransA(U, e.B, m, q, r).map((x) => x * f); // q × r
    const right = matmul(e.A, V, r, n, q); // r × q
    if (!left.some((x) => x !== 0) || !right.some((x) => x !== 0)) return;
    activeExperts++;
    const rrT = matmulTransB(right, right, r, q, r); // r × r
    const lTl = matmulTransA(left, left, q, r, r); // r × r
    const eL = matmulTransB(matmul(left, rrT, q, r, r), left, q, r, q);
    const eR = matmul(matmulTransA(right, lTl, r, q, r), right, q, r, q);
    for (let k = 0; k < q * q; k++) {
      energyLeft[k]! += eL[k]!;
      energyRight[k]! += eR[k]!;
    }
  });
  return {
    singularValues: s,
    U,
    V,
    activeExperts,
    left: sharingOperator(energyLeft, s, q, activeExperts),
    right: sharingOperator(energyRight, s, q, activeExperts),
  };
}

export interface OsmHyper extends Record<string, unknown> {
  gamma: number;
  energy: number;
  rank: number;
}

/** Overlap-normalised Spectral Merge: ΔW = U·T_L^(−γ/2)·S·T_R^(−γ/2)·Vᵀ (see the README). */
export function mergeOsm(input: ModuleMergeInput, h: OsmHyper, ctx: MergeContext): MergeResult {
  const { outFeatures: m, inFeatures: n } = input;
  const a = osmAnalyse(input, ctx);
  const q = a.singularValues.length;
  const power = (t: OsmSharing) =>
    spectralFunction(
      t.vectors,
      t.sharing.map((x) => x ** (-h.gamma / 2)),
      q,
    );
  // M = T_L^(−γ/2)·S·T_R^(−γ/2): scale the left factor's columns by s, then multiply.
  const pl = power(a.left);
  for (let i = 0; i < q; i++) for (let k = 0; k < q; k++) pl[i * q + k]! *= a.singularValues[k]!;
  const core = matmul(pl, power(a.right), q, q, q);
  // ΔW = (U P) Σ (V Q)ᵀ with M = P Σ Qᵀ; Σ descending, so truncation keeps the strongest.
  const msvd = smallSvd(core, q, q);
  const keep = chooseRank(msvd.s, { energy: h.energy, ...(h.rank > 0 ? { rank: h.rank } : {}) });
  const directions = Array.from({ length: keep }, (_, k) => ({ k, value: msvd.s[k]! }));
  return factorsFromDirections(
    matmul(a.U, msvd.u, m, q, q),
    matmul(a.V, msvd.v, n, q, q),
    q,
    directions,
    m,
    n,
  );
}

export const osm = defineStrategy({
  name: "osm",
  resultKind: "lowrank",
  description:
    "Overlap-normalised Spectral Merge (this project's earlier method): exact SVD of the summed updates in factor space; the summed core is divided, on both sides, by the γ/2 power of a basis-free sharing operator T = E^(−1/2) S² E^(−1/2) (E = the experts' own energy, T's eigenvalues = how many experts share a direction, clamped to [1, N]), so shared directions are averaged and an expert's own directions are kept whole. Continuous, order-independent, low-rank result, no validation data.",
  reference:
    "This project (docs: packages/strategies/README.md). γ = 1 makes one expert merged with itself N times return itself and experts with orthogonal row and column spaces sum (task arithmetic, λ = 1).",
  params: {
    gamma: {
      type: "number",
      default: 1,
      min: 0,
      max: 4,
      description: "power of the sharing operator the core is divided by",
    },
    energy: PARAMS.energy,
    rank: { ...PARAMS.rank, description: "rank cap (0 = no cap)" },
  },
  run: mergeOsm,
});

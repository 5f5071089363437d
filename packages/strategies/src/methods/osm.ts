import { chooseRank, concatenate, lowRankSvd, matmul, matmulTransA } from "@merge/lora";
import { checkRange, defineStrategy, expertWeights } from "../hyper.js";
import {
  type MergeContext,
  type MergeResult,
  type ModuleMergeInput,
  StrategyError,
} from "../types.js";
import { factorsFromDirections } from "../to-low-rank.js";

/** Directions with s_k ≤ this fraction of s_0 are numerically absent and are dropped. */
export const SINGULAR_TOLERANCE = 1e-10;

export interface OsmAnalysis {
  /** Singular values s_k of ΔW_sum = Σ w_i ΔW_i over the kept (non-zero) directions, descending. */
  singularValues: Float64Array;
  /** n_k = 1 / Σ_i e_ik²: 1 when one expert owns direction k, N when N experts share it equally. */
  participation: Float64Array;
  /** shares[i][k] = e_ik, expert i's normalised share of direction k (Σ_i e_ik = 1). */
  shares: Float64Array[];
  /** U (out × q) and V (in × q), row-major, of the kept directions. */
  U: Float64Array;
  V: Float64Array;
}

/**
 * Steps 1–3 of OSM: the exact SVD of ΔW_sum in factor space and, per joint direction, each
 * expert's share of it and the participation ratio. Cost O((m + n)·R²) with R = Σ r_i.
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
  const energy = experts.map(() => new Float64Array(q));
  experts.forEach((e, i) => {
    if (e === null || e.rank === 0 || q === 0) return;
    const r = e.rank;
    const f = w[i]! * e.scale;
    // C_i = Uᵀ (w_i ΔW_i) V = (Uᵀ B_i)(A_i V)·w_i·scale_i, a q × q matrix.
    const left = matmulTransA(U, e.B, m, q, r); // q × r
    const right = matmul(e.A, V, r, n, q); // r × q
    const c = matmul(left, right, q, r, q);
    const ek = energy[i]!;
    for (let a = 0; a < q; a++) {
      for (let b = 0; b < q; b++) {
        const v = f * c[a * q + b]!;
        ek[a]! += v * v; // row a
        ek[b]! += v * v; // column b
      }
    }
  });
  const participation = new Float64Array(q);
  for (let k = 0; k < q; k++) {
    let total = 0;
    for (const ek of energy) total += ek[k]!;
    let sq = 0;
    for (const ek of energy) {
      ek[k] = total > 0 ? ek[k]! / total : 0;
      sq += ek[k]! * ek[k]!;
    }
    participation[k] = sq > 0 ? 1 / sq : 1;
  }
  return { singularValues: svd.S.slice(0, q), participation, shares: energy, U, V };
}

export interface OsmHyper extends Record<string, unknown> {
  gamma: number;
  energy: number;
  rank: number;
}

/** Overlap-normalised Spectral Merge: ΔW = Σ_k s_k / n_k^γ · u_k v_kᵀ (see the README). */
export function mergeOsm(input: ModuleMergeInput, h: OsmHyper, ctx: MergeContext): MergeResult {
  const { outFeatures: m, inFeatures: n } = input;
  const a = osmAnalyse(input, ctx);
  const q = a.singularValues.length;
  const merged = Array.from({ length: q }, (_, k) => ({
    k,
    value: a.singularValues[k]! / a.participation[k]! ** h.gamma,
  }));
  // Largest merged values first (ties by original order), so energy truncation keeps the strongest.
  merged.sort((x, y) => y.value - x.value || x.k - y.k);
  const keep = chooseRank(
    merged.map((x) => x.value),
    { energy: h.energy, ...(h.rank > 0 ? { rank: h.rank } : {}) },
  );
  return factorsFromDirections(a.U, a.V, q, merged.slice(0, keep), m, n);
}

export const osm = defineStrategy<OsmHyper>({
  name: "osm",
  description:
    "Overlap-normalised Spectral Merge (this project's default): exact SVD of the summed updates in factor space; each joint direction's singular value is divided by its participation ratio n_k^γ (how many experts share it), so shared directions are averaged and an expert's own directions are kept whole. Low-rank result, no validation data.",
  reference:
    "This project (docs: packages/strategies/README.md). Participation ratio as in localisation theory (Bell & Dean 1970); γ = 1 makes one expert merged with itself N times return itself and orthogonal experts sum (task arithmetic, λ = 1).",
  defaults: { gamma: 1, energy: 1, rank: 0 },
  validate(h) {
    checkRange("osm", "energy", h.energy, 0, 1);
    checkRange("osm", "gamma", h.gamma, 0, 4);
    if (!Number.isInteger(h.rank) || h.rank < 0) {
      throw new StrategyError(
        `osm: rank must be a non-negative integer (0 = no cap), got ${h.rank}`,
      );
    }
  },
  run: mergeOsm,
});

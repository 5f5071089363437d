import { lowRankSvd, matmul, matmulTransA, matmulTransB, smallSvd, thinQr } from "@merge/lora";
import { defineStrategy, expertWeights, PARAMS } from "../hyper.js";
import { factorsFromDirections, lowRankResult } from "../to-low-rank.js";
import type { ModuleMergeInput } from "../types.js";
import { weightedSumFactors } from "./linear.js";
import { SINGULAR_TOLERANCE } from "./osm.js";

/**
 * The nonzero part of an SVD (S descending): a sum of LoRAs has rank ≤ Σ r_i, so every spectrum
 * method here works on those R directions only and never gives null-space directions weight.
 * "Nonzero" is relative, σ > SINGULAR_TOLERANCE·σ_max as in OSM and KnOTS: when experts share a
 * subspace (or a LoRA is rank deficient) the factor-space SVD returns round-off singular values
 * of order 1e-16·σ_max, not exact zeros, and their directions are noise.
 */
export function nonzeroRank(S: ArrayLike<number>): number {
  const floor = S.length > 0 ? SINGULAR_TOLERANCE * S[0]! : 0;
  let k = 0;
  while (k < S.length && S[k]! > floor) k++;
  return k;
}

export const isoC = defineStrategy({
  name: "iso_c",
  resultKind: "lowrank",
  description:
    "Iso-C: the sum of the experts' updates with its spectrum flattened: ΔW = α·σ̄·U Vᵀ over the R ≤ Σr nonzero singular directions of the sum, σ̄ their mean singular value.",
  reference:
    "Marczak et al. 2025, No task left behind: isotropic model merging with common and task-specific subspaces (ICML). The paper picks α on validation data; we do not and use α = 1 (the sum's own mean singular value).",
  params: { alpha: PARAMS.alpha },
  run(input, h, ctx) {
    const sum = weightedSumFactors(input, expertWeights(input, ctx));
    const svd = lowRankSvd(sum);
    const R = nonzeroRank(svd.S);
    let mean = 0;
    for (let i = 0; i < R; i++) mean += svd.S[i]! / R;
    return flat(input, svd.U, svd.V, svd.rank, R, h.alpha * mean);
  },
});

export const energyIso = defineStrategy({
  name: "energy_iso",
  resultKind: "lowrank",
  description:
    "Ours, energy-matched isotropic merge: the directions of the experts' summed update with a flat spectrum (as Iso-C), at the strength that gives the merge the mean energy of one expert, ‖ΔW‖²_F = mean_i ‖w_i ΔW_i‖²_F, so no scale has to be tuned.",
  reference:
    "this toolkit (packages/strategies/README.md, 'Energy-matched isotropic merge'); the flat spectrum follows Marczak et al. 2025 (Iso-C)",
  params: {},
  run(input, _h, ctx) {
    const w = expertWeights(input, ctx);
    const svd = lowRankSvd(weightedSumFactors(input, w));
    const R = nonzeroRank(svd.S);
    let energy = 0;
    let present = 0;
    input.experts.forEach((e, i) => {
      if (e === null) return;
      const own = lowRankSvd({ ...e, B: Float64Array.from(e.B, (b) => b * e.scale * w[i]!) });
      for (let c = 0; c < own.rank; c++) energy += own.S[c]! * own.S[c]!;
      present++;
    });
    // R equal singular values σ carry R·σ² of energy: σ = √(mean energy / R).
    const sigma = R > 0 && present > 0 ? Math.sqrt(energy / present / R) : 0;
    return flat(input, svd.U, svd.V, svd.rank, R, sigma);
  },
});

export const tsvM = defineStrategy({
  name: "tsv_m",
  resultKind: "lowrank",
  description:
    "TSV-Merge: each expert keeps its top k = ⌊min(m,n)/N⌋ singular directions (all r for a LoRA when k ≥ r); the concatenated left and right singular vectors are replaced by their nearest orthonormal matrices (polar factors), and ΔW = α·U⊥ Σ V⊥ᵀ.",
  reference:
    "Gargiulo et al. 2025, Task singular vectors: reducing task interference in model merging (CVPR); α = 1 as in the paper's default.",
  params: { alpha: PARAMS.alpha },
  run(input, h, ctx) {
    const { outFeatures: m, inFeatures: n } = input;
    const w = expertWeights(input, ctx);
    const present = input.experts.filter((e) => e !== null).length;
    const budget = Math.max(1, Math.floor(Math.min(m, n) / Math.max(1, present)));
    const U: number[][] = [];
    const V: number[][] = [];
    const S: number[] = [];
    input.experts.forEach((e, i) => {
      if (e === null) return;
      const svd = lowRankSvd({
        A: e.A,
        B: Float64Array.from(e.B, (b) => b * e.scale * w[i]!), // Float64: no extra rounding
        rank: e.rank,
        outFeatures: m,
        inFeatures: n,
      });
      const k = Math.min(budget, nonzeroRank(svd.S));
      for (let c = 0; c < k; c++) {
        U.push(column(svd.U, m, svd.rank, c));
        V.push(column(svd.V, n, svd.rank, c));
        S.push(svd.S[c]!);
      }
    });
    const K = S.length;
    if (K === 0) return lowRankResult({ A: [], B: [], rank: 0, outFeatures: m, inFeatures: n });
    const Uo = polar(columnsToMatrix(U, m), m, K);
    const Vo = polar(columnsToMatrix(V, n), n, K);
    const directions = S.map((s, k) => ({ k, value: s * h.alpha }));
    return factorsFromDirections(Uo, Vo, K, directions, m, n);
  },
});

export const isoCts = defineStrategy({
  name: "iso_cts",
  resultKind: "lowrank",
  description:
    "Iso-CTS: a budget of R = min(m, n, Σr) directions; the common part is the top k = round(ρ·R) singular directions of M = Σ w_i ΔW_i (its nonzero ones only), the remaining R − k are split evenly, s = ⌊(R − k)/N⌋ per present expert, as the top s singular directions of its update projected off the common left subspace, (I − U_c U_cᵀ) w_i ΔW_i. The stacked left and right singular vectors are replaced by their polar factors (as TSV-M) and ΔW = α·σ̄·U⊥ V⊥ᵀ, σ̄ the mean nonzero singular value of M (as Iso-C). ρ = commonFraction; ρ = 1 is Iso-C.",
  reference:
    "Marczak et al. 2025, No task left behind: isotropic model merging with common and task-specific subspaces (ICML): Iso-CTS with the paper's common fraction ρ = 0.8. Our choices: the budget is R = min(m, n, Σr) where the paper's is the full dimension (a sum of LoRAs has only R directions); null directions of M inside the common budget are dropped, not re-allocated; the task-specific right vectors are those of the projected expert's SVD; α = 1 (the paper tunes α on validation data; we do not).",
  params: {
    alpha: PARAMS.alpha,
    commonFraction: {
      type: "number",
      default: 0.8,
      min: 0,
      max: 1,
      description: "share ρ of the budget given to the common subspace",
    },
  },
  run(input, h, ctx) {
    const { outFeatures: m, inFeatures: n } = input;
    const zero = () => lowRankResult({ A: [], B: [], rank: 0, outFeatures: m, inFeatures: n });
    const w = expertWeights(input, ctx);
    const M = lowRankSvd(weightedSumFactors(input, w));
    const RM = nonzeroRank(M.S);
    if (RM === 0) return zero();
    const present = input.experts.filter((e) => e !== null);
    const R = Math.min(
      m,
      n,
      present.reduce((t, e) => t + e.rank, 0),
    );
    const k = Math.round(h.commonFraction * R); // the common budget
    const kc = Math.min(k, RM); // its nonzero directions: null directions of M carry nothing
    const s = Math.floor((R - k) / present.length);
    const U: number[][] = [];
    const V: number[][] = [];
    for (let c = 0; c < kc; c++) {
      U.push(column(M.U, m, M.rank, c));
      V.push(column(M.V, n, M.rank, c));
    }
    const Uc = columnsToMatrix(U, m); // m × kc
    if (s > 0) {
      input.experts.forEach((e, i) => {
        if (e === null) return;
        const B = Float64Array.from(e.B, (b) => b * e.scale * w[i]!); // Float64: no extra rounding
        const own = lowRankSvd({ A: e.A, B, rank: e.rank, outFeatures: m, inFeatures: n });
        if (own.rank === 0 || !(own.S[0]! > 0)) return;
        // (I − U_c U_cᵀ)·B, m × r: the expert's update off the common subspace, in factor space.
        const inside = matmul(Uc, matmulTransA(Uc, B, m, kc, e.rank), m, kc, e.rank);
        for (let j = 0; j < B.length; j++) B[j] = B[j]! - inside[j]!;
        const off = lowRankSvd({ A: e.A, B, rank: e.rank, outFeatures: m, inFeatures: n });
        // Relative to the expert's own σ_max: its part inside U_c leaves round-off, not directions.
        const floor = SINGULAR_TOLERANCE * own.S[0]!;
        for (let c = 0; c < Math.min(s, off.rank) && off.S[c]! > floor; c++) {
          U.push(column(off.U, m, off.rank, c));
          V.push(column(off.V, n, off.rank, c));
        }
      });
    }
    const K = U.length;
    if (K === 0) return zero();
    const Uo = polar(columnsToMatrix(U, m), m, K);
    const Vo = polar(columnsToMatrix(V, n), n, K);
    let mean = 0;
    for (let c = 0; c < RM; c++) mean += M.S[c]! / RM;
    return flat(input, Uo, Vo, K, K, h.alpha * mean);
  },
});

function column(M: Float64Array, rows: number, cols: number, c: number): number[] {
  const out = new Array<number>(rows);
  for (let i = 0; i < rows; i++) out[i] = M[i * cols + c]!;
  return out;
}

function columnsToMatrix(cols: number[][], rows: number): Float64Array {
  const K = cols.length;
  const M = new Float64Array(rows * K);
  cols.forEach((col, c) => {
    for (let i = 0; i < rows; i++) M[i * K + c] = col[i]!;
  });
  return M;
}

/**
 * The orthonormal matrix nearest to M (rows × K, K ≤ rows) in Frobenius norm: P·Qᵀ from the
 * SVD M = P Σ Qᵀ (via a thin QR first, so the SVD is only K × K). Directions of a rank-deficient
 * M get zero columns.
 */
function polar(M: Float64Array, rows: number, K: number): Float64Array {
  if (K > rows) throw new Error(`polar: ${K} columns exceed ${rows} rows`);
  const qr = thinQr(M, rows, K);
  const core = smallSvd(qr.r, qr.p, K);
  const left = matmul(qr.q, core.u, rows, qr.p, core.q); // rows × q
  return matmulTransB(left, core.v, rows, core.q, K); // (rows × q)·(K × q)ᵀ
}

/** The first R directions of U·Vᵀ (q columns each), all at the same singular value: a flat spectrum. */
function flat(
  input: ModuleMergeInput,
  U: Float64Array,
  V: Float64Array,
  q: number,
  R: number,
  value: number,
) {
  const directions = Array.from({ length: R }, (_, k) => ({ k, value }));
  return factorsFromDirections(U, V, q, directions, input.outFeatures, input.inFeatures);
}

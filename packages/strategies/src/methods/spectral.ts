import { lowRankSvd, matmul, matmulTransB, smallSvd, thinQr } from "@merge/lora";
import { checkRange, defineStrategy, expertWeights } from "../hyper.js";
import { lowRankResult } from "../to-low-rank.js";
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
  defaults: { alpha: 1 },
  validate: (h) => checkRange("iso_c", "alpha", h.alpha, 0, Number.MAX_VALUE),
  run(input, h, ctx) {
    const sum = weightedSumFactors(input, expertWeights(input, ctx));
    const svd = lowRankSvd(sum);
    const R = nonzeroRank(svd.S);
    let mean = 0;
    for (let i = 0; i < R; i++) mean += svd.S[i]! / R;
    return directionsResult(input, svd.U, svd.V, svd.rank, R, () => h.alpha * mean);
  },
});

export const energyIso = defineStrategy({
  name: "energy_iso",
  resultKind: "lowrank",
  description:
    "Ours, energy-matched isotropic merge: the directions of the experts' summed update with a flat spectrum (as Iso-C), at the strength that gives the merge the mean energy of one expert, ‖ΔW‖²_F = mean_i ‖w_i ΔW_i‖²_F, so no scale has to be tuned.",
  reference:
    "this toolkit (packages/strategies/README.md, 'Energy-matched isotropic merge'); the flat spectrum follows Marczak et al. 2025 (Iso-C)",
  defaults: {},
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
    return directionsResult(input, svd.U, svd.V, svd.rank, R, () => sigma);
  },
});

export const tsvM = defineStrategy({
  name: "tsv_m",
  resultKind: "lowrank",
  description:
    "TSV-Merge: each expert keeps its top k = ⌊min(m,n)/N⌋ singular directions (all r for a LoRA when k ≥ r); the concatenated left and right singular vectors are replaced by their nearest orthonormal matrices (polar factors), and ΔW = α·U⊥ Σ V⊥ᵀ.",
  reference:
    "Gargiulo et al. 2025, Task singular vectors: reducing task interference in model merging (CVPR); α = 1 as in the paper's default.",
  defaults: { alpha: 1 },
  validate: (h) => checkRange("tsv_m", "alpha", h.alpha, 0, Number.MAX_VALUE),
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
    const B = new Float64Array(m * K);
    const A = new Float64Array(K * n);
    for (let i = 0; i < m; i++)
      for (let c = 0; c < K; c++) B[i * K + c] = Uo[i * K + c]! * S[c]! * h.alpha;
    for (let c = 0; c < K; c++) for (let j = 0; j < n; j++) A[c * n + j] = Vo[j * K + c]!;
    return lowRankResult({ A, B, rank: K, outFeatures: m, inFeatures: n });
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

/** B = U[:, :R]·value, A = V[:, :R]ᵀ as a low-rank result. */
function directionsResult(
  input: ModuleMergeInput,
  U: Float64Array,
  V: Float64Array,
  q: number,
  R: number,
  value: (c: number) => number,
) {
  const { outFeatures: m, inFeatures: n } = input;
  const B = new Float64Array(m * R);
  const A = new Float64Array(R * n);
  for (let c = 0; c < R; c++) {
    const v = value(c);
    for (let i = 0; i < m; i++) B[i * R + c] = U[i * q + c]! * v;
    for (let j = 0; j < n; j++) A[c * n + j] = V[j * q + c]!;
  }
  return lowRankResult({ A, B, rank: R, outFeatures: m, inFeatures: n });
}

import { deriveSeed, matmul, matmulTransB, Rng, smallSvd, thinQr } from "@merge/lora";
import { defineStrategy, expertWeights, PARAMS } from "../hyper.js";
import { kthLargest } from "../select.js";
import {
  type MergeContext,
  type MergeResult,
  type ModuleMergeInput,
  StrategyError,
} from "../types.js";
import { factorsFromDirections } from "../to-low-rank.js";
import { SINGULAR_TOLERANCE } from "./osm.js";

export interface KnotsHyper extends Record<string, unknown> {
  method: string;
  density: number;
  p: number;
  lambda: number;
}

/**
 * The joint SVD basis of KnOTS: [w_1ΔW_1 | … | w_NΔW_N] = U S [V_1ᵀ … V_Nᵀ], so that
 * w_iΔW_i = U S V_iᵀ. Computed in factor space: the concatenation is B_cat · blockdiag(A_i), so QR
 * of B_cat and of each A_iᵀ plus an SVD of the R × R core give U, S and every V_i.
 */
export function knotsBasis(
  input: ModuleMergeInput,
  ctx: MergeContext,
): { U: Float64Array; S: Float64Array; V: Array<Float64Array | null>; q: number } {
  const { outFeatures: m, inFeatures: n, experts } = input;
  const w = expertWeights(input, ctx);
  const present = experts.flatMap((e, i) => (e !== null && e.rank > 0 ? [{ e, i }] : []));
  const R = present.reduce((s, x) => s + x.e.rank, 0);
  if (R === 0 || m === 0 || n === 0) {
    return { U: new Float64Array(0), S: new Float64Array(0), V: experts.map(() => null), q: 0 };
  }
  const bcat = new Float64Array(m * R);
  let off = 0;
  for (const { e, i } of present) {
    const f = w[i]! * e.scale;
    for (let row = 0; row < m; row++)
      for (let k = 0; k < e.rank; k++) bcat[row * R + off + k] = f * e.B[row * e.rank + k]!;
    off += e.rank;
  }
  const qb = thinQr(bcat, m, R);
  const qas = present.map(({ e }) => thinQr(e.A, n, e.rank, true));
  const P = qas.reduce((s, x) => s + x.p, 0);
  // core = R_b · blockdiag(R_a,i)ᵀ : p_b × P
  const core = new Float64Array(qb.p * P);
  let rOff = 0;
  let pOff = 0;
  present.forEach(({ e }, x) => {
    const qa = qas[x]!;
    const rbBlock = new Float64Array(qb.p * e.rank);
    for (let a = 0; a < qb.p; a++)
      for (let k = 0; k < e.rank; k++) rbBlock[a * e.rank + k] = qb.r[a * R + rOff + k]!;
    const part = matmulTransB(rbBlock, qa.r, qb.p, e.rank, qa.p);
    for (let a = 0; a < qb.p; a++)
      for (let c = 0; c < qa.p; c++) core[a * P + pOff + c] = part[a * qa.p + c]!;
    rOff += e.rank;
    pOff += qa.p;
  });
  const svd = smallSvd(core, qb.p, P);
  const s0 = svd.q > 0 ? svd.s[0]! : 0;
  let q = 0;
  while (q < svd.q && svd.s[q]! > SINGULAR_TOLERANCE * s0) q++;
  const uFull = matmul(qb.q, svd.u, m, qb.p, svd.q);
  const U = new Float64Array(m * q);
  for (let i = 0; i < m; i++) for (let c = 0; c < q; c++) U[i * q + c] = uFull[i * svd.q + c]!;
  const V: Array<Float64Array | null> = experts.map(() => null);
  pOff = 0;
  present.forEach(({ i }, x) => {
    const qa = qas[x]!;
    const vk = new Float64Array(qa.p * q);
    for (let a = 0; a < qa.p; a++)
      for (let c = 0; c < q; c++) vk[a * q + c] = svd.v[(pOff + a) * svd.q + c]!;
    V[i] = matmul(qa.q, vk, n, qa.p, q);
    pOff += qa.p;
  });
  return { U, S: svd.s.slice(0, q), V, q };
}

/** Keeps exactly ⌊density·len⌋ entries of largest magnitude (first ones in order on ties). */
function trimInPlace(v: Float64Array, density: number): void {
  if (density >= 1) return;
  const k = Math.floor(density * v.length);
  if (k <= 0) {
    v.fill(0);
    return;
  }
  const abs = v.map(Math.abs);
  const t = kthLargest(abs, k);
  let quota = k;
  for (let i = 0; i < v.length; i++) if (Math.abs(v[i]!) > t) quota--;
  for (let i = 0; i < v.length; i++) {
    const a = Math.abs(v[i]!);
    if (a > t) continue;
    if (a === t && quota > 0) {
      quota--;
      continue;
    }
    v[i] = 0;
  }
}

export function mergeKnots(input: ModuleMergeInput, h: KnotsHyper, ctx: MergeContext): MergeResult {
  const { outFeatures: m, inFeatures: n, module } = input;
  const basis = knotsBasis(input, ctx);
  const { q } = basis;
  const coeffs = basis.V.flatMap((v, i) => (v === null ? [] : [{ v: v.slice(), i }]));
  const len = n * q;
  for (const c of coeffs) {
    if (h.method === "ties") trimInPlace(c.v, h.density);
    else if (h.method === "dare_ties") {
      const rng = new Rng(deriveSeed(ctx.seed, "knots-dare", module, c.i));
      for (let j = 0; j < len; j++) c.v[j] = rng.nextFloat() >= h.p ? c.v[j]! / (1 - h.p) : 0;
    }
  }
  const merged = new Float64Array(len);
  for (let j = 0; j < len; j++) {
    if (h.method === "linear") {
      let s = 0;
      for (const c of coeffs) s += c.v[j]!;
      merged[j] = s;
      continue;
    }
    let total = 0;
    for (const c of coeffs) total += c.v[j]!;
    const elected = total >= 0 ? 1 : -1;
    let acc = 0;
    let agree = 0;
    for (const c of coeffs) {
      const x = c.v[j]!;
      if (x !== 0 && Math.sign(x) === elected) {
        acc += x;
        agree++;
      }
    }
    merged[j] = agree === 0 ? 0 : acc / agree;
  }
  // ΔW = U S (λ V_merged)ᵀ: B = U·diag(S), A = λ·V_mergedᵀ.
  const directions = Array.from({ length: q }, (_, k) => ({ k, value: basis.S[k]! }));
  const result = factorsFromDirections(basis.U, merged, q, directions, m, n, h.lambda);
  if (!result.A.every(Number.isFinite))
    throw new StrategyError("knots produced non-finite factors", module);
  return result;
}

export const knots = defineStrategy({
  name: "knots",
  resultKind: "lowrank",
  description:
    "KnOTS-style SVD alignment: express every expert in the joint SVD basis of [w_1ΔW_1 | … | w_NΔW_N] (computed in factor space), merge the per-expert right coefficients V_i with TIES (or DARE-TIES, or a plain sum), return U S V_mergedᵀ. Low-rank result.",
  reference:
    "Stoica et al. 2025, Model merging with SVD to tie the KnOTS (ICLR): TIES on the V_i; density 0.2 and λ = 1 follow TIES' no-validation defaults",
  params: {
    method: {
      type: "string",
      default: "ties",
      choices: ["ties", "dare_ties", "linear"],
      description: "how the right coefficients V_i are merged",
    },
    density: PARAMS.density,
    p: PARAMS.p,
    lambda: PARAMS.lambda,
  },
  run: mergeKnots,
});

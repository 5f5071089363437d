import { type LoraModule, lowRankSvd, svdToLowRank, truncateSvd } from "@merge/lora";
import { defineStrategy, type NumberParam } from "../hyper.js";
import type { ModuleMergeInput, RoutedExpert, RoutedMergeResult, Router } from "../types.js";
import { nonzeroRank } from "./spectral.js";

/**
 * Each expert as an orthonormal input basis A (its right singular vectors, rows) and B = U·S,
 * from the exact factor-space SVD of scale·B·A (scale folded in Float64). Directions with a zero
 * singular value (σ ≤ SINGULAR_TOLERANCE·σ_max, round-off of a rank-deficient LoRA) are dropped:
 * they are null-space directions that would add noise to the router's scores.
 * An expert whose update is exactly zero becomes null (it has nothing to route to).
 */
export function routedExperts(input: ModuleMergeInput): Array<RoutedExpert | null> {
  const { outFeatures: m, inFeatures: n } = input;
  return input.experts.map((e: LoraModule | null) => {
    if (e === null) return null;
    const svd = lowRankSvd({
      A: e.A,
      B: scaled(e.B, e.scale),
      rank: e.rank,
      outFeatures: m,
      inFeatures: n,
    });
    const k = nonzeroRank(svd.S);
    if (k === 0) return null;
    const { A, B } = svdToLowRank(truncateSvd(svd, k)); // A = Vᵀ, B = U·S
    return { A, B, rank: k };
  });
}

function scaled(x: Float32Array, s: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * s;
  return y;
}

function routedResult(input: ModuleMergeInput, router: Router): RoutedMergeResult {
  return {
    kind: "routed",
    experts: routedExperts(input),
    router,
    outFeatures: input.outFeatures,
    inFeatures: input.inFeatures,
  };
}

/** The number of experts a token is routed to: a positive integer. */
function topKParam(fallback: number) {
  return {
    type: "number",
    default: fallback,
    min: 1,
    integer: true,
    description: "experts kept per token",
  } as const satisfies NumberParam;
}

export const smile = defineStrategy({
  name: "smile",
  resultKind: "routed",
  description:
    "SMILE zero-shot routed mixture: per token and module, each expert scores ‖V_iᵀx‖ (its right singular vectors), softmax over experts, the top-k kept and renormalised; the base plus the chosen experts' full updates.",
  reference:
    "Tang et al. 2024, SMILE: zero-shot sparse mixture of low-rank experts construction from pre-trained foundation models (routing on all r directions of a LoRA update, i.e. gate_k = r; experts kept whole, k = r; top_k = 1 as in the reference implementation's default)",
  params: { topK: topKParam(1) },
  run: (input, h) =>
    routedResult(input, { score: "norm", gate: "softmax_top_k", topK: h.topK, temperature: 1 }),
});

export const arrow = defineStrategy({
  name: "arrow",
  resultKind: "routed",
  description:
    "Arrow routing: each expert's prototype is the top right singular vector of its update; per token and module the experts score |v_i·x|, the top-k are softmax-weighted (temperature T).",
  reference:
    "Ostapenko et al. 2024, Towards modular LLMs by building and reusing a library of LoRAs (Arrow); top_k = 3 and temperature 1 as in PEFT's ArrowConfig defaults",
  params: {
    topK: topKParam(3),
    temperature: {
      type: "number",
      default: 1,
      min: 0,
      minExclusive: true,
      description: "softmax temperature over the top-k scores",
    },
  },
  run: (input, h) =>
    routedResult(input, {
      score: "first",
      gate: "softmax_top_k",
      topK: h.topK,
      temperature: h.temperature,
    }),
});

export const liftRouting = defineStrategy({
  name: "lift_routing",
  resultKind: "routed",
  description:
    "Ours, Chance-Lift Routing: per token and module each expert scores the share of the input's energy inside its subspace divided by the share a random direction would have there (r_i/in), so ranks and activation scale drop out; only the best expert applies, weighted by its margin 1 − second/best, so a token that two experts claim equally goes to the base.",
  reference:
    "this toolkit (packages/strategies/README.md, 'Chance-Lift Routing'); no hyperparameters",
  params: {},
  run: (input) => routedResult(input, { score: "lift", gate: "margin", topK: 1, temperature: 1 }),
});

/**
 * Reference forward of the side branch a routed result adds: Σ_i g_i(x) · B_i A_i x for each
 * row of x (rows × in). Float64 arithmetic; the ONNX graph implements the same function.
 * Also returns the gates (rows × experts) for inspection.
 */
export function routedForward(
  r: RoutedMergeResult,
  x: Float32Array | Float64Array,
  rows: number,
): { y: Float64Array; gates: Float64Array } {
  const { outFeatures: m, inFeatures: n, experts, router } = r;
  const E = experts.length;
  const y = new Float64Array(rows * m);
  const gates = new Float64Array(rows * E);
  const scores = new Float64Array(E);
  for (let t = 0; t < rows; t++) {
    const xo = t * n;
    let xx = 0;
    for (let j = 0; j < n; j++) xx += x[xo + j]! * x[xo + j]!;
    const coords: Array<Float64Array | null> = experts.map((e) => {
      if (e === null) return null;
      const z = new Float64Array(e.rank);
      for (let c = 0; c < e.rank; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += e.A[c * n + j]! * x[xo + j]!;
        z[c] = s;
      }
      return z;
    });
    coords.forEach((z, i) => {
      if (z === null) {
        scores[i] = Number.NEGATIVE_INFINITY;
        return;
      }
      let e2 = 0;
      for (const v of z) e2 += v * v;
      scores[i] =
        router.score === "norm"
          ? Math.sqrt(e2)
          : router.score === "first"
            ? Math.abs(z[0]!)
            : xx > 0
              ? ((e2 / xx) * n) / z.length
              : 0;
    });
    const g = gateOf(router, scores);
    for (let i = 0; i < E; i++) {
      gates[t * E + i] = g[i]!;
      const z = coords[i];
      const e = experts[i];
      if (!z || !e || g[i] === 0) continue;
      for (let o = 0; o < m; o++) {
        let s = 0;
        for (let c = 0; c < e.rank; c++) s += e.B[o * e.rank + c]! * z[c]!;
        y[t * m + o] = y[t * m + o]! + g[i]! * s;
      }
    }
  }
  return { y, gates };
}

/** The router's gates for one row of scores (−∞ = expert absent). */
function gateOf(router: Router, scores: Float64Array): Float64Array {
  const E = scores.length;
  const g = new Float64Array(E);
  const order = [...scores.keys()].filter((i) => scores[i]! > Number.NEGATIVE_INFINITY);
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  if (order.length === 0) return g;
  if (router.gate === "margin") {
    const best = scores[order[0]!]!;
    const second = order.length > 1 ? scores[order[1]!]! : 0;
    g[order[0]!] = best > 0 ? Math.min(1, Math.max(0, 1 - second / best)) : 0;
    return g;
  }
  const kept = order.slice(0, router.topK);
  const top = scores[kept[0]!]! / router.temperature;
  let z = 0;
  for (const i of kept) z += Math.exp(scores[i]! / router.temperature - top);
  for (const i of kept) g[i] = Math.exp(scores[i]! / router.temperature - top) / z;
  return g;
}

import { MistralOnnxError } from "./errors.js";

/**
 * How a routed delta weighs its experts per token (the graph's side of @merge/strategies'
 * Router; the same fields, so a strategy's router passes through unchanged):
 * score "norm" ‖A_i x‖, "first" |a_i1·x|, "lift" (‖A_i x‖²/‖x‖²)·in/r_i;
 * gate "softmax_top_k" (softmax of the topK best scores / temperature) or "margin" (the best
 * expert alone, weighted 1 − second/best).
 */
export interface RouterSpec {
  score: "norm" | "first" | "lift";
  gate: "softmax_top_k" | "margin";
  topK: number;
  temperature: number;
}

/** One expert of a routed delta: ΔW_i = B·A, A's rows orthonormal (rank × in), B out × rank. */
export interface RoutedExpertDelta {
  A: Float32Array;
  B: Float32Array;
  rank: number;
}

/** Per-module weight delta to fold into the base (W + ΔW) or attach as a side branch. */
export type WeightDelta =
  | { kind: "dense"; delta: Float32Array } // out × in
  | { kind: "lowrank"; A: Float32Array; B: Float32Array; rank: number } // ΔW = B·A
  // Applied per token through a router; never folded (there is no single ΔW).
  | { kind: "routed"; experts: Array<RoutedExpertDelta | null>; router: RouterSpec };

/**
 * The per-layer projections a DeltaSource is asked about, by module suffix. buildDecoderGraph
 * reads its projection names from here, so this is the one list of modules whose deltas are
 * applied; a delta for any other module (embeddings, norms, lm_head) is never requested.
 */
export const PROJECTION = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;

/** Module suffixes (after "model.layers.N.") that DeltaSource.get is called for. */
export const DELTA_PROJECTIONS: readonly string[] = Object.freeze(Object.values(PROJECTION));

const DELTA_TARGET = /^model\.layers\.(0|[1-9]\d*)\.(.+)$/;

/** True for "model.layers.N.<suffix>" with a suffix in DELTA_PROJECTIONS. */
export function isDeltaTarget(module: string): boolean {
  const m = DELTA_TARGET.exec(module);
  return m !== null && DELTA_PROJECTIONS.includes(m[2] as string);
}

export interface DeltaSource {
  /** module: "model.layers.0.self_attn.q_proj"; undefined = no change to that module. */
  get(module: string): Promise<WeightDelta | undefined>;
}

/** Throws naming the module when a delta's sizes do not fit an out × in weight. */
export function checkDelta(module: string, d: WeightDelta, out: number, inF: number): void {
  if (d.kind === "routed") {
    checkRouted(module, d, out, inF);
    return;
  }
  if (d.kind === "dense") {
    if (d.delta.length !== out * inF) {
      throw new MistralOnnxError(
        `delta for ${module}: dense delta has ${d.delta.length} values, expected ${out}×${inF} = ${out * inF}`,
        { tensor: module },
      );
    }
    return;
  }
  if (!Number.isInteger(d.rank) || d.rank <= 0) {
    throw new MistralOnnxError(
      `delta for ${module}: rank must be a positive integer, got ${d.rank}`,
      {
        tensor: module,
      },
    );
  }
  if (d.A.length !== d.rank * inF) {
    throw new MistralOnnxError(
      `delta for ${module}: A has ${d.A.length} values, expected rank×in = ${d.rank}×${inF}`,
      { tensor: module },
    );
  }
  if (d.B.length !== out * d.rank) {
    throw new MistralOnnxError(
      `delta for ${module}: B has ${d.B.length} values, expected out×rank = ${out}×${d.rank}`,
      { tensor: module },
    );
  }
}

function checkRouted(
  module: string,
  d: Extract<WeightDelta, { kind: "routed" }>,
  out: number,
  inF: number,
): void {
  const fail = (what: string) => {
    throw new MistralOnnxError(`routed delta for ${module}: ${what}`, { tensor: module });
  };
  const { router } = d;
  if (!["norm", "first", "lift"].includes(router.score)) fail(`unknown score "${router.score}"`);
  if (!["softmax_top_k", "margin"].includes(router.gate)) fail(`unknown gate "${router.gate}"`);
  if (!Number.isInteger(router.topK) || router.topK < 1)
    fail(`topK must be ≥ 1, got ${router.topK}`);
  if (!(router.temperature > 0)) fail(`temperature must be > 0, got ${router.temperature}`);
  if (d.experts.length === 0) fail("no expert slots");
  d.experts.forEach((e, i) => {
    if (e === null) return;
    if (!Number.isInteger(e.rank) || e.rank <= 0)
      fail(`expert ${i}: rank must be ≥ 1, got ${e.rank}`);
    if (e.A.length !== e.rank * inF)
      fail(`expert ${i}: A has ${e.A.length} values, expected ${e.rank}×${inF}`);
    if (e.B.length !== out * e.rank)
      fail(`expert ${i}: B has ${e.B.length} values, expected ${out}×${e.rank}`);
  });
}

/**
 * W += ΔW in place (W: out × in, row-major). A low-rank ΔW = B·A is formed one row at a time,
 * so no dense out × in delta is ever allocated.
 */
export function foldDelta(w: Float32Array, d: WeightDelta, out: number, inF: number): void {
  if (d.kind === "routed") {
    throw new MistralOnnxError(
      "a routed delta cannot be folded into the weight (it is applied per token)",
    );
  }
  if (d.kind === "dense") {
    const x = d.delta;
    for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) + (x[i] as number);
    return;
  }
  const { A, B, rank } = d;
  for (let o = 0; o < out; o++) {
    const row = o * inF;
    for (let k = 0; k < rank; k++) {
      const b = B[o * rank + k] as number;
      if (b === 0) continue;
      const a = k * inF;
      for (let i = 0; i < inF; i++) w[row + i] = (w[row + i] as number) + b * (A[a + i] as number);
    }
  }
}

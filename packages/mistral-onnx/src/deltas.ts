import { MistralOnnxError } from "./errors.js";

/** Per-module weight delta to fold into the base (W + ΔW) or attach as a LoRA side branch. */
export type WeightDelta =
  | { kind: "dense"; delta: Float32Array } // out × in
  | { kind: "lowrank"; A: Float32Array; B: Float32Array; rank: number }; // ΔW = B·A

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

/**
 * W += ΔW in place (W: out × in, row-major). A low-rank ΔW = B·A is formed one row at a time,
 * so no dense out × in delta is ever allocated.
 */
export function foldDelta(w: Float32Array, d: WeightDelta, out: number, inF: number): void {
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

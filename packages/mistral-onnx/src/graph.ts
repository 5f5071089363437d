import type { MistralConfig } from "./config.js";
import { PROJECTION } from "./deltas.js";
import { attention, attentionFused, gqaLengths } from "./graph/attention.js";
import { swiGlu } from "./graph/mlp.js";
import { IO } from "./io.js";
import { graphContext, type ModelDtype } from "./graph/context.js";
import {
  type LinearOptions,
  linear as linearPart,
  matmulW as matmulPart,
  type WeightQuant,
} from "./graph/linear.js";
import { attentionBias } from "./graph/mask.js";
import { addRmsNormFused, rmsNormFused, rmsNorm as rmsNormPart } from "./graph/norm.js";
import { rotary, rotaryFused } from "./graph/rotary.js";
import type { FusedOps } from "./options.js";
import type { GraphBuilder } from "./onnx/graph-builder.js";
import type { FusedWeight, WeightReader } from "./weights.js";

export type { FusedOps, ModelDtype, WeightQuant };

export { IO } from "./io.js";

const INT64_BIG = 2 ** 62;

export interface DecoderGraphOptions {
  dtype: ModelDtype;
  /** Weight-only block-wise quantization of the projections and lm_head (MatMulNBits). */
  weightQuant?: WeightQuant;
  /** Block size along the input dimension for weightQuant (default 128, as onnxruntime's own 4-bit quantizer; 32 is more accurate and slower). */
  quantBlockSize?: number;
  /** MatMulNBits accuracy_level: 4 = int8 activations (fastest on x86 CPUs), 0 = float (default 4). */
  quantAccuracyLevel?: number;
  /** Quantize lm_head too (default true). */
  quantizeLmHead?: boolean;
  /** "none" (default): standard ONNX ops only; "contrib": onnxruntime's fused contrib ops. */
  fusedOps?: FusedOps;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Builds a Mistral/Llama decoder with standard ONNX ops (opset 17):
 * Gather embedding → L × [RMSNorm → fused QKV MatMul → rotary → GQA attention with causal,
 * padding and sliding-window masks and a KV cache → o_proj → residual → RMSNorm → fused
 * gate/up MatMul → SiLU·up → down_proj → residual] → RMSNorm → last-K slice → lm_head.
 * Weights are written to the external data file as each is reached.
 * With fusedOps "contrib" the same computation uses onnxruntime's contrib ops: each residual
 * add and the RMSNorm after it are one SkipSimplifiedLayerNormalization (the first norm a
 * SimplifiedLayerNormalization), rotary is RotaryEmbedding and attention GroupQueryAttention.
 */
export async function buildDecoderGraph(
  g: GraphBuilder,
  c: MistralConfig,
  weights: WeightReader,
  options: DecoderGraphOptions,
): Promise<void> {
  const { dtype } = options;
  const H = c.hiddenSize;
  const D = c.headDim;
  const Hq = c.numHeads;
  const Hkv = c.numKvHeads;
  const I = c.intermediateSize;
  const V = c.vocabSize;
  const totalSteps = 2 + c.numLayers * 6 + 1;
  let done = 0;
  const step = (what: string) => options.onProgress?.(++done, totalSteps, what);

  const ctx = graphContext(g, dtype);
  const { elem, i64 } = ctx;
  const linearOptions: LinearOptions = {
    weightQuant: options.weightQuant ?? "none",
    quantBlockSize: options.quantBlockSize ?? 128,
    quantAccuracyLevel: options.quantAccuracyLevel ?? 4,
  };

  // ---- inputs
  const inputIds = g.input(IO.inputIds, "int64", ["batch", "seq"]);
  const attnMask = g.input(IO.attentionMask, "int64", ["batch", "total_seq"]);
  const positionIds = g.input(IO.positionIds, "int64", ["batch", "seq"]);
  const keep = g.input(IO.logitsToKeep, "int64", []);
  const past: Array<[string, string]> = [];
  for (let l = 0; l < c.numLayers; l++) {
    past.push([
      g.input(IO.pastKey(l), elem, ["batch", Hkv, "past_seq", D]),
      g.input(IO.pastValue(l), elem, ["batch", Hkv, "past_seq", D]),
    ]);
  }

  const fused = (options.fusedOps ?? "none") === "contrib";
  g.setScope("/mask");
  const bias = attentionBias(ctx, inputIds, attnMask, c.slidingWindow, fused);
  g.setScope("/rotary");
  const ropeArgs = [ctx, positionIds, D, c.ropeTheta, c.ropeLinearFactor] as const;
  const rope = fused ? null : rotary(...ropeArgs);
  const ropeFused = fused ? rotaryFused(...ropeArgs) : null;
  const lengths = fused ? gqaLengths(ctx, attnMask) : null;

  const rmsNorm = async (x: string, weightName: string) => {
    const w = await weights.tensor(weightName, [H]);
    const y = await (fused ? rmsNormFused : rmsNormPart)(ctx, x, weightName, w, c.rmsNormEps);
    step(weightName);
    return y;
  };
  const matmulW = (
    x: string,
    name: string,
    w: Float32Array,
    inF: number,
    outF: number,
    quantize = true,
  ) => matmulPart(ctx, linearOptions, x, name, w, inF, outF, quantize);
  const linear = async (x: string, name: string, fw: FusedWeight, inF: number, outF: number) => {
    const y = await linearPart(ctx, linearOptions, x, name, fw, inF, outF);
    step(name);
    return y;
  };

  // ---- embedding
  g.setScope("/embed");
  const embed = await weights.tensor("model.embed_tokens.weight", [V, H]);
  const embedName = await g.weight("model.embed_tokens.weight", elem, [V, H], ctx.bytes(embed));
  step("model.embed_tokens.weight");
  // The tied head reuses the embedding matrix (V × H = out × in).
  let lmHead: Float32Array | null = c.tieWordEmbeddings ? embed : null;
  let x = g.op1("Gather", [embedName, inputIds], { attrs: { axis: { int: 0 } } }); // [B,S,H]
  // The residual stream x. The standard graph adds each branch output to it at once; with
  // fused ops the add waits (`pending`) and is done together with the norm that follows it,
  // one SkipSimplifiedLayerNormalization that also returns the sum.
  let pending: string | null = null;
  const addResidual = (delta: string) => {
    if (fused) pending = delta;
    else x = g.op1("Add", [x, delta]);
  };
  const addThenNorm = async (weightName: string) => {
    if (pending === null) return rmsNorm(x, weightName);
    const w = await weights.tensor(weightName, [H]);
    const r = await addRmsNormFused(ctx, pending, x, weightName, w, c.rmsNormEps);
    step(weightName);
    x = r.sum;
    pending = null;
    return r.normed;
  };

  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    g.setScope(`/layers.${l}/attn`);
    const h = await addThenNorm(`${p}.input_layernorm.weight`);
    const qkvW = await weights.fused(
      [
        { module: `${p}.${PROJECTION.q}`, out: Hq * D },
        { module: `${p}.${PROJECTION.k}`, out: Hkv * D },
        { module: `${p}.${PROJECTION.v}`, out: Hkv * D },
      ],
      H,
    );
    const qkv = await linear(h, `${p}.self_attn.qkv_proj`, qkvW, H, (Hq + 2 * Hkv) * D);
    const shape = { heads: Hq, kvHeads: Hkv, headDim: D };
    const pastL = past[l] as [string, string];
    const merged =
      ropeFused && lengths
        ? attentionFused(ctx, qkv, l, pastL, bias, lengths, ropeFused, shape)
        : attention(ctx, qkv, l, pastL, bias, rope as (x: string) => string, shape);
    const oW = await weights.fused([{ module: `${p}.${PROJECTION.o}`, out: H }], Hq * D);
    addResidual(await linear(merged, `${p}.self_attn.o_proj`, oW, Hq * D, H));

    g.setScope(`/layers.${l}/mlp`);
    const h2 = await addThenNorm(`${p}.post_attention_layernorm.weight`);
    const guW = await weights.fused(
      [
        { module: `${p}.${PROJECTION.gate}`, out: I },
        { module: `${p}.${PROJECTION.up}`, out: I },
      ],
      H,
    );
    const gu = await linear(h2, `${p}.mlp.gate_up_proj`, guW, H, 2 * I);
    const act = swiGlu(ctx, gu, I);
    const downW = await weights.fused([{ module: `${p}.${PROJECTION.down}`, out: H }], I);
    addResidual(await linear(act, `${p}.mlp.down_proj`, downW, I, H));
  }

  g.setScope("/head");
  const normed = await addThenNorm("model.norm.weight");
  // Keep the last K positions (K = 0 keeps all): prefill needs only the last row of logits.
  const start = g.op1("Neg", [g.op1("Reshape", [keep, i64([1])])]);
  const kept = g.op1("Slice", [normed, start, i64([INT64_BIG]), i64([1])]);
  if (!lmHead) lmHead = await weights.tensor("lm_head.weight", [V, H]);
  const logits = await matmulW(kept, "lm_head", lmHead, H, V, options.quantizeLmHead ?? true);
  step("lm_head");
  if (dtype === "fp32") {
    g.op1("Identity", [logits], { outputNames: [IO.logits] });
  } else {
    g.op1("Cast", [logits], { attrs: { to: { int: 1 } }, outputNames: [IO.logits] });
  }
  g.output(IO.logits, "float32", ["batch", "kept_seq", V]);
}

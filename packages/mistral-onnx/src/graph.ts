import { f32ToF16 } from "@merge/tensor-io";
import type { MistralConfig } from "./config.js";
import { PROJECTION } from "./deltas.js";
import type { GraphBuilder } from "./onnx/graph-builder.js";
import type { ElemType } from "./onnx/proto.js";
import { routedBranch } from "./graph/routed.js";
import { quantizeBlockwise } from "./quantize.js";
import { type FusedWeight, transposeInto, type WeightReader } from "./weights.js";

export type ModelDtype = "fp32" | "fp16";

/** Graph input/output names; the runner binds these. */
export const IO = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  logitsToKeep: "num_logits_to_keep",
  logits: "logits",
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
} as const;

/** Added to the scores of masked keys (in float32). Finite, so fully masked (padding) rows stay NaN-free. */
const MASKED = -1e30;
const INT64_BIG = 2 ** 62;

export type WeightQuant = "none" | "int8" | "int4";

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
  onProgress?: (done: number, total: number, what: string) => void;
}

function toBytes(x: Float32Array, dtype: ModelDtype): Uint8Array {
  if (dtype === "fp32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const h = f32ToF16(x);
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
}

/**
 * Builds a Mistral/Llama decoder with standard ONNX ops (opset 17):
 * Gather embedding → L × [RMSNorm → fused QKV MatMul → rotary → GQA attention with causal,
 * padding and sliding-window masks and a KV cache → o_proj → residual → RMSNorm → fused
 * gate/up MatMul → SiLU·up → down_proj → residual] → RMSNorm → last-K slice → lm_head.
 * Weights are written to the external data file as each is reached.
 */
export async function buildDecoderGraph(
  g: GraphBuilder,
  c: MistralConfig,
  weights: WeightReader,
  options: DecoderGraphOptions,
): Promise<void> {
  const { dtype } = options;
  const elem: ElemType = dtype === "fp32" ? "float32" : "float16";
  const H = c.hiddenSize;
  const D = c.headDim;
  const Hq = c.numHeads;
  const Hkv = c.numKvHeads;
  const I = c.intermediateSize;
  const V = c.vocabSize;
  const totalSteps = 2 + c.numLayers * 6 + 1;
  let done = 0;
  const step = (what: string) => options.onProgress?.(++done, totalSteps, what);

  const i64 = (v: number[]) => g.constant("int64", v);
  const f32 = (v: number) => g.constant("float32", [v], []);
  const toF32 = (x: string) =>
    dtype === "fp32" ? x : g.op1("Cast", [x], { attrs: { to: { int: 1 } } });
  const toModel = (x: string) =>
    dtype === "fp32" ? x : g.op1("Cast", [x], { attrs: { to: { int: 10 } } });
  const unsqueeze = (x: string, axes: number[]) => g.op1("Unsqueeze", [x, i64(axes)]);

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

  // ---- attention bias [B,1,S,T]: causal by index in the padded sequence (as transformers does),
  // sliding window, and the padding mask.
  g.setScope("/mask");
  const S1 = g.op1("Slice", [g.op1("Shape", [inputIds]), i64([1]), i64([2])]);
  const T1 = g.op1("Slice", [g.op1("Shape", [attnMask]), i64([1]), i64([2])]);
  const P1 = g.op1("Sub", [T1, S1]);
  const squeeze = (x: string) => g.op1("Squeeze", [x, i64([0])]);
  const T = squeeze(T1);
  const P = squeeze(P1);
  const one = g.constant("int64", [1], []);
  const zero = g.constant("int64", [0], []);
  const kIdx = unsqueeze(g.op1("Range", [zero, T, one]), [0]); // [1,T]
  const qIdx = unsqueeze(g.op1("Range", [P, T, one]), [1]); // [S,1]
  let allowed = g.op1("LessOrEqual", [kIdx, qIdx]); // [S,T]
  if (c.slidingWindow !== null) {
    const lower = g.op1("Sub", [qIdx, g.constant("int64", [c.slidingWindow], [])]);
    allowed = g.op1("And", [allowed, g.op1("Greater", [kIdx, lower])]);
  }
  const padOk = unsqueeze(g.op1("Cast", [attnMask], { attrs: { to: { int: 9 } } }), [1, 2]); // [B,1,1,T]
  const allowed4 = g.op1("And", [unsqueeze(allowed, [0, 1]), padOk]);
  const bias = g.op1("Where", [allowed4, f32(0), f32(MASKED)]);

  // ---- rotary tables [B,1,S,D]; HF computes them in float32 from position_ids.
  g.setScope("/rotary");
  const invFreq: number[] = [];
  for (let i = 0; i < D; i += 2) invFreq.push(1 / c.ropeTheta ** (i / D) / c.ropeLinearFactor);
  const invFreqT = g.constant("float32", invFreq.map(Math.fround));
  const pos = unsqueeze(g.op1("Cast", [positionIds], { attrs: { to: { int: 1 } } }), [2]); // [B,S,1]
  const freqs = g.op1("Mul", [pos, invFreqT]); // [B,S,D/2]
  const cosHalf = g.op1("Cos", [freqs]);
  const sinHalf = g.op1("Sin", [freqs]);
  const cos = toModel(
    unsqueeze(g.op1("Concat", [cosHalf, cosHalf], { attrs: { axis: { int: -1 } } }), [1]),
  );
  const sinSigned = toModel(
    unsqueeze(
      g.op1("Concat", [g.op1("Neg", [sinHalf]), sinHalf], { attrs: { axis: { int: -1 } } }),
      [1],
    ),
  );
  const halves = i64([D / 2, D / 2]);
  // x·cos + rotate_half(x)·sin, with rotate_half(x)·sin = [x2, x1]·[-sin, sin].
  const rope = (x: string) => {
    const [x1, x2] = g.op("Split", [x, halves], { attrs: { axis: { int: -1 } }, outputs: 2 }) as [
      string,
      string,
    ];
    const swapped = g.op1("Concat", [x2, x1], { attrs: { axis: { int: -1 } } });
    return g.op1("Add", [g.op1("Mul", [x, cos]), g.op1("Mul", [swapped, sinSigned])]);
  };

  const rmsNorm = async (x: string, weightName: string) => {
    const w = await weights.tensor(weightName, [H]);
    const wName = await g.weight(weightName, elem, [H], toBytes(w, dtype));
    const x32 = toF32(x);
    const ms = g.op1("ReduceMean", [g.op1("Pow", [x32, f32(2)])], {
      attrs: { axes: { ints: [-1] }, keepdims: { int: 1 } },
    });
    const y = g.op1("Div", [x32, g.op1("Sqrt", [g.op1("Add", [ms, f32(c.rmsNormEps)])])]);
    step(weightName);
    return g.op1("Mul", [toModel(y), wName]);
  };

  const quant = options.weightQuant ?? "none";
  const blockSize = options.quantBlockSize ?? 128;
  /** x·Wᵀ for W out × in: MatMul on the transposed weight, or MatMulNBits on quantized rows. */
  const matmulW = async (
    x: string,
    name: string,
    w: Float32Array,
    inF: number,
    outF: number,
    quantize = true,
  ) => {
    if (quant === "none" || !quantize) {
      const wT = new Float32Array(inF * outF);
      transposeInto(wT, outF, 0, w, outF, inF);
      return g.op1("MatMul", [
        x,
        await g.weight(`${name}.weight_T`, elem, [inF, outF], toBytes(wT, dtype)),
      ]);
    }
    const bits = quant === "int4" ? 4 : 8;
    const q = quantizeBlockwise(w, outF, inF, bits, blockSize);
    const kBlocks = Math.ceil(inF / blockSize);
    const b = await g.weight(
      `${name}.weight_q${bits}`,
      "uint8",
      [outF, kBlocks, (blockSize * bits) / 8],
      q.data,
    );
    const sc = await g.weight(
      `${name}.weight_scales`,
      elem,
      [outF * kBlocks],
      toBytes(q.scales, dtype),
    );
    return g.op1("MatMulNBits", [x, b, sc], {
      domain: "com.microsoft",
      attrs: {
        K: { int: inF },
        N: { int: outF },
        bits: { int: bits },
        block_size: { int: blockSize },
        accuracy_level: { int: options.quantAccuracyLevel ?? 4 },
      },
    });
  };

  /** x·Wᵀ for a fused weight, plus its LoRA side branch when it has one. */
  const linear = async (x: string, name: string, fw: FusedWeight, inF: number, outF: number) => {
    let y = await matmulW(x, name, fw.w, inF, outF);
    if (fw.side) {
      const a = await g.weight(
        `${name}.lora_A_T`,
        elem,
        [inF, fw.side.rank],
        toBytes(fw.side.aT, dtype),
      );
      const b = await g.weight(
        `${name}.lora_B_T`,
        elem,
        [fw.side.rank, outF],
        toBytes(fw.side.bT, dtype),
      );
      y = g.op1("Add", [y, g.op1("MatMul", [g.op1("MatMul", [x, a]), b])]);
    }
    if (fw.routed && fw.routed.rank > 0) {
      y = g.op1("Add", [y, await routedBranch(g, x, name, fw.routed, inF, outF, dtype)]);
    }
    step(name);
    return y;
  };

  // ---- embedding
  g.setScope("/embed");
  const embed = await weights.tensor("model.embed_tokens.weight", [V, H]);
  const embedName = await g.weight(
    "model.embed_tokens.weight",
    elem,
    [V, H],
    toBytes(embed, dtype),
  );
  step("model.embed_tokens.weight");
  // The tied head reuses the embedding matrix (V × H = out × in).
  let lmHead: Float32Array | null = c.tieWordEmbeddings ? embed : null;
  let x = g.op1("Gather", [embedName, inputIds], { attrs: { axis: { int: 0 } } }); // [B,S,H]

  const scale = f32(1 / Math.sqrt(D));
  const scaleModel = dtype === "fp32" ? scale : toModel(scale);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    g.setScope(`/layers.${l}/attn`);
    const h = await rmsNorm(x, `${p}.input_layernorm.weight`);
    const qkvW = await weights.fused(
      [
        { module: `${p}.${PROJECTION.q}`, out: Hq * D },
        { module: `${p}.${PROJECTION.k}`, out: Hkv * D },
        { module: `${p}.${PROJECTION.v}`, out: Hkv * D },
      ],
      H,
    );
    const qkv = await linear(h, `${p}.self_attn.qkv_proj`, qkvW, H, (Hq + 2 * Hkv) * D);
    const [q0, k0, v0] = g.op("Split", [qkv, i64([Hq * D, Hkv * D, Hkv * D])], {
      attrs: { axis: { int: -1 } },
      outputs: 3,
    }) as [string, string, string];
    const heads = (t: string, n: number) =>
      g.op1("Transpose", [g.op1("Reshape", [t, i64([0, 0, n, D])])], {
        attrs: { perm: { ints: [0, 2, 1, 3] } },
      });
    const q = g.op1("Mul", [rope(heads(q0, Hq)), scaleModel]); // [B,Hq,S,D]
    const k = rope(heads(k0, Hkv)); // [B,Hkv,S,D]
    const v = heads(v0, Hkv);
    const [pastK, pastV] = past[l] as [string, string];
    const presentK = g.op1("Concat", [pastK, k], {
      attrs: { axis: { int: 2 } },
      outputNames: [IO.presentKey(l)],
    });
    const presentV = g.op1("Concat", [pastV, v], {
      attrs: { axis: { int: 2 } },
      outputNames: [IO.presentValue(l)],
    });
    g.output(IO.presentKey(l), elem, ["batch", Hkv, "total_seq", D]);
    g.output(IO.presentValue(l), elem, ["batch", Hkv, "total_seq", D]);
    // GQA without repeating K/V: the g query heads that share a KV head are stacked along the
    // sequence axis ([B,Hkv,g·S,D]), so one batched MatMul covers them.
    const qGrouped = g.op1("Reshape", [q, i64([0, Hkv, -1, D])]);
    const kT = g.op1("Transpose", [presentK], { attrs: { perm: { ints: [0, 1, 3, 2] } } });
    const scores = g.op1("Reshape", [g.op1("MatMul", [qGrouped, kT]), i64([0, Hq, -1, 0])]); // [B,Hq,S,T]
    const probs = g.op1("Softmax", [g.op1("Add", [toF32(scores), bias])], {
      attrs: { axis: { int: -1 } },
    });
    const ctx = g.op1("MatMul", [
      g.op1("Reshape", [toModel(probs), i64([0, Hkv, -1, 0])]),
      presentV,
    ]);
    const merged = g.op1("Reshape", [
      g.op1("Transpose", [g.op1("Reshape", [ctx, i64([0, Hq, -1, D])])], {
        attrs: { perm: { ints: [0, 2, 1, 3] } },
      }),
      i64([0, 0, Hq * D]),
    ]);
    const oW = await weights.fused([{ module: `${p}.${PROJECTION.o}`, out: H }], Hq * D);
    x = g.op1("Add", [x, await linear(merged, `${p}.self_attn.o_proj`, oW, Hq * D, H)]);

    g.setScope(`/layers.${l}/mlp`);
    const h2 = await rmsNorm(x, `${p}.post_attention_layernorm.weight`);
    const guW = await weights.fused(
      [
        { module: `${p}.${PROJECTION.gate}`, out: I },
        { module: `${p}.${PROJECTION.up}`, out: I },
      ],
      H,
    );
    const gu = await linear(h2, `${p}.mlp.gate_up_proj`, guW, H, 2 * I);
    const [gate, up] = g.op("Split", [gu, i64([I, I])], {
      attrs: { axis: { int: -1 } },
      outputs: 2,
    }) as [string, string];
    const act = g.op1("Mul", [g.op1("Mul", [gate, g.op1("Sigmoid", [gate])]), up]);
    const downW = await weights.fused([{ module: `${p}.${PROJECTION.down}`, out: H }], I);
    x = g.op1("Add", [x, await linear(act, `${p}.mlp.down_proj`, downW, I, H)]);
  }

  g.setScope("/head");
  const normed = await rmsNorm(x, "model.norm.weight");
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

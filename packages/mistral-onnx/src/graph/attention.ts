import { IO } from "../io.js";
import type { GraphContext } from "./context.js";

export interface AttentionShape {
  heads: number; // query heads
  kvHeads: number;
  headDim: number;
}

/**
 * Causal grouped-query attention over the KV cache for one layer, from the fused q/k/v
 * projection [B,S,(Hq+2·Hkv)·D]: rotary on q and k, the present K/V (past ++ new) registered as
 * graph outputs, softmax in float32 with the attention bias, result [B,S,Hq·D].
 */
export function attention(
  c: GraphContext,
  qkv: string,
  layer: number,
  past: [string, string],
  bias: string,
  rope: (x: string) => string,
  { heads: Hq, kvHeads: Hkv, headDim: D }: AttentionShape,
): string {
  const { g, i64, toF32, toModel, elem } = c;
  const [q0, k0, v0] = g.op("Split", [qkv, i64([Hq * D, Hkv * D, Hkv * D])], {
    attrs: { axis: { int: -1 } },
    outputs: 3,
  }) as [string, string, string];
  const split = (t: string, n: number) =>
    g.op1("Transpose", [g.op1("Reshape", [t, i64([0, 0, n, D])])], {
      attrs: { perm: { ints: [0, 2, 1, 3] } },
    });
  const scale = c.f32(1 / Math.sqrt(D));
  const q = g.op1("Mul", [rope(split(q0, Hq)), c.dtype === "fp32" ? scale : toModel(scale)]); // [B,Hq,S,D]
  const k = rope(split(k0, Hkv)); // [B,Hkv,S,D]
  const v = split(v0, Hkv);
  const [pastK, pastV] = past;
  const presentK = g.op1("Concat", [pastK, k], {
    attrs: { axis: { int: 2 } },
    outputNames: [IO.presentKey(layer)],
  });
  const presentV = g.op1("Concat", [pastV, v], {
    attrs: { axis: { int: 2 } },
    outputNames: [IO.presentValue(layer)],
  });
  g.output(IO.presentKey(layer), elem, ["batch", Hkv, "total_seq", D]);
  g.output(IO.presentValue(layer), elem, ["batch", Hkv, "total_seq", D]);
  // GQA without repeating K/V: the g query heads that share a KV head are stacked along the
  // sequence axis ([B,Hkv,g·S,D]), so one batched MatMul covers them.
  const qGrouped = g.op1("Reshape", [q, i64([0, Hkv, -1, D])]);
  const kT = g.op1("Transpose", [presentK], { attrs: { perm: { ints: [0, 1, 3, 2] } } });
  const scores = g.op1("Reshape", [g.op1("MatMul", [qGrouped, kT]), i64([0, Hq, -1, 0])]); // [B,Hq,S,T]
  const probs = g.op1("Softmax", [g.op1("Add", [toF32(scores), bias])], {
    attrs: { axis: { int: -1 } },
  });
  const ctx = g.op1("MatMul", [g.op1("Reshape", [toModel(probs), i64([0, Hkv, -1, 0])]), presentV]);
  return g.op1("Reshape", [
    g.op1("Transpose", [g.op1("Reshape", [ctx, i64([0, Hq, -1, D])])], {
      attrs: { perm: { ints: [0, 2, 1, 3] } },
    }),
    i64([0, 0, Hq * D]),
  ]);
}

/** GroupQueryAttention's per-row lengths, built once per graph from attention_mask's shape. */
export interface GqaLengths {
  /** int32 [B]: T − 1 for every row (all T cache slots are used; padding is in the bias). */
  seqlensK: string;
  /** int32 scalar: T = past + new. */
  totalSeq: string;
}

/**
 * seqlens_k and total_sequence_length for GroupQueryAttention. Every row is declared to use
 * the whole padded length T, so the op appends this step's K/V at index P = T − S in every row
 * (the standard graph's Concat layout) and treats key j as visible to query i when
 * j ≤ P + i (the standard graph's causal rule by padded index); padding and the sliding
 * window come from the attention bias.
 */
export function gqaLengths(c: GraphContext, attnMask: string): GqaLengths {
  const { g, i64 } = c;
  const shape = g.op1("Shape", [attnMask]);
  const B1 = g.op1("Slice", [shape, i64([0]), i64([1])]);
  const T1 = g.op1("Slice", [shape, i64([1]), i64([2])]);
  const toI32 = (x: string) => g.op1("Cast", [x], { attrs: { to: { int: 6 } } });
  const seqlensK = toI32(g.op1("Expand", [g.op1("Sub", [T1, i64([1])]), B1]));
  const totalSeq = toI32(g.op1("Squeeze", [T1, i64([0])]));
  return { seqlensK, totalSeq };
}

/**
 * The same attention as `attention` with onnxruntime contrib ops: RotaryEmbedding on q and k
 * (`rope`), then com.microsoft.GroupQueryAttention on [B,S,H·D] q/k/v with the past K/V
 * ([B,Hkv,P,D]) and the graph's attention bias (model dtype, [B,1,S,T]); presents
 * [B,Hkv,T,D] are graph outputs as before. GroupQueryAttention's own rotary (do_rotary) and
 * local window are not used: its rotary derives positions from seqlens_k (wrong for
 * left-padded rows, whose positions count real tokens only) and the bias already holds the
 * sliding window exactly as the standard graph computes it.
 */
export function attentionFused(
  c: GraphContext,
  qkv: string,
  layer: number,
  past: [string, string],
  bias: string,
  lengths: GqaLengths,
  rope: (x: string, heads: number) => string,
  { heads: Hq, kvHeads: Hkv, headDim: D }: AttentionShape,
): string {
  const { g, i64, elem } = c;
  const [q0, k0, v] = g.op("Split", [qkv, i64([Hq * D, Hkv * D, Hkv * D])], {
    attrs: { axis: { int: -1 } },
    outputs: 3,
  }) as [string, string, string];
  const [pastK, pastV] = past;
  const [out] = g.op(
    "GroupQueryAttention",
    [
      rope(q0, Hq),
      rope(k0, Hkv),
      v,
      pastK,
      pastV,
      lengths.seqlensK,
      lengths.totalSeq,
      "", // cos_cache
      "", // sin_cache
      "", // position_ids
      bias,
    ],
    {
      domain: "com.microsoft",
      attrs: {
        num_heads: { int: Hq },
        kv_num_heads: { int: Hkv },
        scale: { float: 1 / Math.sqrt(D) },
      },
      outputNames: [`/layers.${layer}/attn/gqa:0`, IO.presentKey(layer), IO.presentValue(layer)],
    },
  ) as [string, string, string];
  g.output(IO.presentKey(layer), elem, ["batch", Hkv, "total_seq", D]);
  g.output(IO.presentValue(layer), elem, ["batch", Hkv, "total_seq", D]);
  return out;
}

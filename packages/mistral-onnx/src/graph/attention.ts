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

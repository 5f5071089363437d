import type { GraphContext } from "./context.js";

/** RMSNorm over the last axis, computed in float32: x / √(mean(x²) + ε) · weight. */
export async function rmsNorm(
  c: GraphContext,
  x: string,
  weightName: string,
  weight: Float32Array,
  eps: number,
): Promise<string> {
  const { g, toF32, toModel, f32 } = c;
  const wName = await g.weight(weightName, c.elem, [weight.length], c.bytes(weight));
  const x32 = toF32(x);
  const ms = g.op1("ReduceMean", [g.op1("Pow", [x32, f32(2)])], {
    attrs: { axes: { ints: [-1] }, keepdims: { int: 1 } },
  });
  const y = g.op1("Div", [x32, g.op1("Sqrt", [g.op1("Add", [ms, f32(eps)])])]);
  return g.op1("Mul", [toModel(y), wName]);
}

/**
 * The same RMSNorm as onnxruntime's SimplifiedLayerNormalization (ONNX domain contrib op,
 * stash_type 1 = statistics in float32 whatever the input type).
 */
export async function rmsNormFused(
  c: GraphContext,
  x: string,
  weightName: string,
  weight: Float32Array,
  eps: number,
): Promise<string> {
  const { g } = c;
  const wName = await g.weight(weightName, c.elem, [weight.length], c.bytes(weight));
  return g.op1("SimplifiedLayerNormalization", [x, wName], {
    attrs: { axis: { int: -1 }, epsilon: { float: eps }, stash_type: { int: 1 } },
  });
}

/**
 * Residual add followed by RMSNorm in one com.microsoft.SkipSimplifiedLayerNormalization:
 * returns the normalized sum and the sum itself (the residual stream's next value).
 */
export async function addRmsNormFused(
  c: GraphContext,
  x: string,
  residual: string,
  weightName: string,
  weight: Float32Array,
  eps: number,
): Promise<{ normed: string; sum: string }> {
  const { g } = c;
  const wName = await g.weight(weightName, c.elem, [weight.length], c.bytes(weight));
  const [normed, , , sum] = g.op("SkipSimplifiedLayerNormalization", [x, residual, wName], {
    domain: "com.microsoft",
    attrs: { epsilon: { float: eps } },
    outputs: 4,
  }) as [string, string, string, string];
  return { normed, sum };
}

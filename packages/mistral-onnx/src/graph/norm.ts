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

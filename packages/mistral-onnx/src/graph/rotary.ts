import type { GraphContext } from "./context.js";

/**
 * Rotary tables [B,1,S,D] from position_ids (in float32, as HF computes them), and the function
 * that rotates a [B,H,S,D] tensor: x·cos + rotate_half(x)·sin, with rotate_half(x)·sin written
 * as [x2, x1]·[-sin, sin].
 */
export function rotary(
  c: GraphContext,
  positionIds: string,
  headDim: number,
  theta: number,
  linearFactor: number,
): (x: string) => string {
  const { g, i64, unsqueeze, toModel } = c;
  const D = headDim;
  const invFreq: number[] = [];
  for (let i = 0; i < D; i += 2) invFreq.push(1 / theta ** (i / D) / linearFactor);
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
  return (x: string) => {
    const [x1, x2] = g.op("Split", [x, halves], { attrs: { axis: { int: -1 } }, outputs: 2 }) as [
      string,
      string,
    ];
    const swapped = g.op1("Concat", [x2, x1], { attrs: { axis: { int: -1 } } });
    return g.op1("Add", [g.op1("Mul", [x, cos]), g.op1("Mul", [swapped, sinSigned])]);
  };
}

import type { GraphContext } from "./context.js";

/** Angles position · inverse frequency, [B,S,D/2] in float32 (as HF computes them). */
function rotaryAngles(
  c: GraphContext,
  positionIds: string,
  headDim: number,
  theta: number,
  linearFactor: number,
): string {
  const { g, unsqueeze } = c;
  const D = headDim;
  const invFreq: number[] = [];
  for (let i = 0; i < D; i += 2) invFreq.push(1 / theta ** (i / D) / linearFactor);
  const invFreqT = g.constant("float32", invFreq.map(Math.fround));
  const pos = unsqueeze(g.op1("Cast", [positionIds], { attrs: { to: { int: 1 } } }), [2]); // [B,S,1]
  return g.op1("Mul", [pos, invFreqT]);
}

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
  const freqs = rotaryAngles(c, positionIds, D, theta, linearFactor); // [B,S,D/2]
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

/**
 * Rotary through com.microsoft.RotaryEmbedding on a [B,S,H·D] tensor, with the same angles as
 * `rotary` (float32 position · inverse frequency, then Cos/Sin). The op looks angles up in a
 * [max_position, D/2] cache by position id; instead of a table sized by the longest position
 * the model may see, the cache here holds one row per token of this call (row b·S + s = the
 * angles of position_ids[b][s]) and the op gets the row indices 0 … B·S−1 as its position ids,
 * so any position id the standard graph accepts works and the angles are bit-identical.
 */
export function rotaryFused(
  c: GraphContext,
  positionIds: string,
  headDim: number,
  theta: number,
  linearFactor: number,
): (x: string, heads: number) => string {
  const { g, i64, toModel } = c;
  const D = headDim;
  const angles = rotaryAngles(c, positionIds, D, theta, linearFactor);
  const freqs = g.op1("Reshape", [angles, i64([-1, D / 2])]); // [B·S,D/2]
  const cosCache = toModel(g.op1("Cos", [freqs]));
  const sinCache = toModel(g.op1("Sin", [freqs]));
  const shape = g.op1("Shape", [positionIds]);
  const count = g.op1("ReduceProd", [shape], { attrs: { keepdims: { int: 0 } } });
  const rows = g.op1("Reshape", [
    g.op1("Range", [g.constant("int64", [0], []), count, g.constant("int64", [1], [])]),
    shape,
  ]); // [B,S]
  return (x: string, heads: number) =>
    g.op1("RotaryEmbedding", [x, rows, cosCache, sinCache], {
      domain: "com.microsoft",
      attrs: { interleaved: { int: 0 }, num_heads: { int: heads } },
    });
}

import type { GraphContext } from "./context.js";

/** SwiGLU on the fused gate/up projection [B,S,2·I]: SiLU(gate) · up, [B,S,I]. */
export function swiGlu(c: GraphContext, gateUp: string, intermediate: number): string {
  const { g, i64 } = c;
  const [gate, up] = g.op("Split", [gateUp, i64([intermediate, intermediate])], {
    attrs: { axis: { int: -1 } },
    outputs: 2,
  }) as [string, string];
  return g.op1("Mul", [g.op1("Mul", [gate, g.op1("Sigmoid", [gate])]), up]);
}

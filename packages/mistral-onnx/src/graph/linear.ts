import type { FusedWeight } from "../weights.js";
import type { GraphContext } from "./context.js";
import { routedBranch } from "./routed.js";

import type { WeightQuant } from "../options.js";

export type { WeightQuant };

export interface LinearOptions {
  weightQuant: WeightQuant;
  quantBlockSize: number;
  quantAccuracyLevel: number;
}

/** x·Wᵀ for W out × in: MatMul on the transposed weight, or MatMulNBits on quantized rows. */
export async function matmulW(
  c: GraphContext,
  o: LinearOptions,
  x: string,
  name: string,
  w: Float32Array,
  inF: number,
  outF: number,
  quantize = true,
): Promise<string> {
  const { g } = c;
  if (o.weightQuant === "none" || !quantize) {
    const wT = await g.encoder.transposed(w, outF, inF, c.dtype);
    return g.op1("MatMul", [x, await g.weight(`${name}.weight_T`, c.elem, [inF, outF], wT)]);
  }
  const bits = o.weightQuant === "int4" ? 4 : 8;
  const blockSize = o.quantBlockSize;
  const q = await g.encoder.quantized(w, outF, inF, bits, blockSize);
  const kBlocks = Math.ceil(inF / blockSize);
  const b = await g.weight(
    `${name}.weight_q${bits}`,
    "uint8",
    [outF, kBlocks, (blockSize * bits) / 8],
    q.data,
  );
  const sc = await g.weight(`${name}.weight_scales`, c.elem, [outF * kBlocks], c.bytes(q.scales));
  return g.op1("MatMulNBits", [x, b, sc], {
    domain: "com.microsoft",
    attrs: {
      K: { int: inF },
      N: { int: outF },
      bits: { int: bits },
      block_size: { int: blockSize },
      accuracy_level: { int: o.quantAccuracyLevel },
    },
  });
}

/**
 * x·Wᵀ for a fused weight, plus its side branches: a LoRA branch (x·Aᵀ)·Bᵀ for low-rank deltas
 * kept apart from W, and the routed branch (graph/routed.ts) for routed deltas.
 */
export async function linear(
  c: GraphContext,
  o: LinearOptions,
  x: string,
  name: string,
  fw: FusedWeight,
  inF: number,
  outF: number,
): Promise<string> {
  const { g } = c;
  let y = await matmulW(c, o, x, name, fw.w, inF, outF);
  if (fw.side) {
    const a = await g.weight(`${name}.lora_A_T`, c.elem, [inF, fw.side.rank], c.bytes(fw.side.aT));
    const b = await g.weight(`${name}.lora_B_T`, c.elem, [fw.side.rank, outF], c.bytes(fw.side.bT));
    y = g.op1("Add", [y, g.op1("MatMul", [g.op1("MatMul", [x, a]), b])]);
  }
  if (fw.routed && fw.routed.rank > 0) {
    y = g.op1("Add", [y, await routedBranch(c, x, name, fw.routed, inF, outF)]);
  }
  return y;
}

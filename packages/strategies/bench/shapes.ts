/** Mistral-7B LoRA target shapes (out × in) per decoder layer, in the order the bench streams them. */
export const MISTRAL_MODULES: ReadonlyArray<{ name: string; out: number; in: number }> = [
  { name: "self_attn.q_proj", out: 4096, in: 4096 },
  { name: "self_attn.k_proj", out: 1024, in: 4096 },
  { name: "self_attn.v_proj", out: 1024, in: 4096 },
  { name: "self_attn.o_proj", out: 4096, in: 4096 },
  { name: "mlp.gate_proj", out: 14336, in: 4096 },
  { name: "mlp.up_proj", out: 14336, in: 4096 },
  { name: "mlp.down_proj", out: 4096, in: 14336 },
];

export interface BenchLayout {
  layers: number;
  experts: number;
  rank: number;
  alpha: number;
}

/** Byte offset of (layer, module, expert) in the factor file: A (r × in) then B (out × r), Float32 LE. */
export function factorOffset(
  layout: BenchLayout,
  layer: number,
  moduleIndex: number,
  expert: number,
): number {
  const { experts, rank } = layout;
  const perLayer = MISTRAL_MODULES.reduce((s, m) => s + experts * rank * (m.in + m.out), 0);
  let off = layer * perLayer;
  for (let i = 0; i < moduleIndex; i++) {
    const m = MISTRAL_MODULES[i]!;
    off += experts * rank * (m.in + m.out);
  }
  const m = MISTRAL_MODULES[moduleIndex]!;
  off += expert * rank * (m.in + m.out);
  return off * 4;
}

export function factorFileBytes(layout: BenchLayout): number {
  return factorOffset(layout, layout.layers, 0, 0);
}

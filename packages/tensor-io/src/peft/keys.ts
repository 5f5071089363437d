/**
 * Tensor keys of a PEFT adapter file → canonical module names. PEFT saves
 * `base_model.model.<module>.lora_A.weight` (the adapter name stripped); other exporters keep
 * it (`.lora_A.default.weight`) or drop the `base_model.model.` prefix. All map to `<module>`,
 * the module's name inside the base model, e.g. `model.layers.3.self_attn.q_proj`.
 */
export type LoraKey = { kind: "lora"; module: string; part: "A" | "B"; adapterName?: string };
export type UnsupportedKey = { kind: "unsupported"; reason: string };
export type OtherKey = { kind: "other" };

const PREFIX = "base_model.model.";
const LORA_KEY = /^(.+)\.lora_(A|B)(?:\.([^.]+))?\.weight$/;

export function parseAdapterKey(key: string): LoraKey | UnsupportedKey | OtherKey {
  const name = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
  const m = LORA_KEY.exec(name);
  if (m !== null) {
    const out: LoraKey = { kind: "lora", module: m[1]!, part: m[2] as "A" | "B" };
    if (m[3] !== undefined) out.adapterName = m[3];
    return out;
  }
  if (/\.lora_embedding_[AB](\.|$)/.test(name)) {
    return { kind: "unsupported", reason: "embedding LoRA (lora_embedding_A/B) is not supported" };
  }
  if (/\.lora_magnitude_vector(\.|$)/.test(name)) {
    return { kind: "unsupported", reason: "DoRA magnitude vectors are not supported" };
  }
  if (/\.lora_[AB](\.[^.]+)?\.bias$/.test(name)) {
    return { kind: "unsupported", reason: "LoRA biases (lora_bias) are not supported" };
  }
  if (/\.lora_/.test(name)) {
    return { kind: "unsupported", reason: "unrecognised LoRA tensor key" };
  }
  return { kind: "other" };
}

export function adapterKey(module: string, part: "A" | "B"): string {
  return `${PREFIX}${module}.lora_${part}.weight`;
}

import { LoraError } from "./errors.js";

/** ΔW = scale · B · A;  A: rank × inFeatures, B: outFeatures × rank (row-major). */
export interface LoraModule {
  A: Float32Array;
  B: Float32Array;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  scale: number;
}

/**
 * The LoRA scaling factor: alpha / r (Hu et al. 2021), or alpha / √r under rsLoRA
 * (Kalajdzievski 2023), exactly as PEFT's `LoraLayer.update_layer` computes it.
 */
export function loraScale(alpha: number, rank: number, useRslora: boolean): number {
  if (!Number.isFinite(alpha)) throw new LoraError(`lora_alpha must be finite, got ${alpha}`);
  if (!Number.isInteger(rank) || rank <= 0) {
    throw new LoraError(`rank must be a positive integer, got ${rank}`);
  }
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

/** Throws a LoraError naming `module` unless the factors have the shapes the fields claim. */
export function validateLoraModule(m: LoraModule, module?: string): void {
  const { rank, inFeatures, outFeatures } = m;
  for (const [name, v] of [
    ["rank", rank],
    ["inFeatures", inFeatures],
    ["outFeatures", outFeatures],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new LoraError(`${name} must be a non-negative integer, got ${v}`, module);
    }
  }
  if (m.A.length !== rank * inFeatures) {
    throw new LoraError(
      `A has ${m.A.length} values, expected rank×in = ${rank}×${inFeatures} = ${rank * inFeatures}`,
      module,
    );
  }
  if (m.B.length !== outFeatures * rank) {
    throw new LoraError(
      `B has ${m.B.length} values, expected out×rank = ${outFeatures}×${rank} = ${outFeatures * rank}`,
      module,
    );
  }
  if (!Number.isFinite(m.scale))
    throw new LoraError(`scale must be finite, got ${m.scale}`, module);
  // One NaN/Inf would turn every SVD of the update into NaN singular values, which rank
  // selection then reads as "nothing to keep": a silent all-zero merge. O((in + out)·rank).
  for (const [name, values, cols] of [
    ["A", m.A, inFeatures],
    ["B", m.B, rank],
  ] as const) {
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        const row = Math.floor(i / cols);
        throw new LoraError(
          `${name} has non-finite value ${values[i]} at row ${row}, column ${i - row * cols}`,
          module,
        );
      }
    }
  }
}

/**
 * A LoraModule from PEFT tensors as stored in `adapter_model.safetensors`.
 *
 * PEFT keeps `lora_A` (r × in) and `lora_B` (out × r) in nn.Linear layout even when
 * `fan_in_fan_out` is set: that flag only says the *base* weight is stored transposed
 * (GPT-2 style Conv1D, in × out), so PEFT transposes B·A when it adds the delta to it. The
 * LoraModule is always the logical out × in map, so undoing fan_in_fan_out leaves the factors
 * as they are; `inFeatures`/`outFeatures` are those of the logical map. A consumer that folds
 * ΔW into a Conv1D weight must transpose it (see `denseDelta`).
 */
export function loraModuleFromPeft(
  t: {
    A: Float32Array;
    aShape: [number, number];
    B: Float32Array;
    bShape: [number, number];
    rank: number;
    alpha: number;
  },
  opts: { useRslora: boolean; fanInFanOut: boolean },
): LoraModule {
  const [aRows, aCols] = t.aShape;
  const [bRows, bCols] = t.bShape;
  if (aRows !== t.rank || bCols !== t.rank) {
    throw new LoraError(
      `rank ${t.rank} does not match lora_A shape [${aRows}, ${aCols}] (expected [r, in]) and ` +
        `lora_B shape [${bRows}, ${bCols}] (expected [out, r])`,
    );
  }
  if (t.A.length !== aRows * aCols) {
    throw new LoraError(
      `lora_A has ${t.A.length} values, shape [${aRows}, ${aCols}] needs ${aRows * aCols}`,
    );
  }
  if (t.B.length !== bRows * bCols) {
    throw new LoraError(
      `lora_B has ${t.B.length} values, shape [${bRows}, ${bCols}] needs ${bRows * bCols}`,
    );
  }
  // opts.fanInFanOut needs no change to the factors (see above); it is accepted so callers
  // pass the config through unchanged and the decision lives in one documented place.
  void opts.fanInFanOut;
  return {
    A: t.A,
    B: t.B,
    rank: t.rank,
    inFeatures: aCols,
    outFeatures: bRows,
    scale: loraScale(t.alpha, t.rank, opts.useRslora),
  };
}

/**
 * Writing a PEFT LoRA adapter folder that Python `peft` loads with `PeftModel.from_pretrained`:
 * adapter_config.json (a complete LoraConfig) and adapter_model.safetensors with PEFT's own key
 * names. Modules whose rank (or given alpha) differs from the config get exact-name entries in
 * rank_pattern / alpha_pattern, placed first because PEFT uses the first pattern that matches.
 */
import { join, resolve } from "node:path";
import { writeTextAtomic } from "../atomic.js";
import { PeftAdapterError } from "../errors.js";
import { encodeFromF32 } from "../float16.js";
import { writeSafetensors } from "../safetensors/writer.js";
import type { TensorToWrite } from "../safetensors/types.js";
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from "./adapter.js";
import { escapeRegex, isTargetModule, moduleRankAndAlpha, type PeftLoraConfig } from "./config.js";
import { adapterKey } from "./keys.js";

export interface PeftModuleToWrite {
  module: string;
  A: Float32Array;
  aShape: [number, number];
  B: Float32Array;
  bShape: [number, number];
  /** Optional per-module alpha; recorded in alpha_pattern when it differs from the config's. */
  alpha?: number;
}

export interface PeftAdapterToWrite {
  config: Partial<PeftLoraConfig> & {
    r: number;
    loraAlpha: number;
    targetModules: string[] | string;
  };
  modules: PeftModuleToWrite[];
  /** Storage dtype of the factors (default F32). */
  dtype?: "F32" | "F16" | "BF16";
}

function checkModule(m: PeftModuleToWrite, file: string, seen: Set<string>): void {
  const name = m.module;
  if (
    typeof name !== "string" ||
    name === "" ||
    name.includes("lora_") ||
    name.startsWith("base_model.")
  ) {
    throw new PeftAdapterError(
      `module name must be a canonical base-model name like "model.layers.0.self_attn.q_proj", got ${JSON.stringify(name)}`,
      file,
    );
  }
  if (seen.has(name)) throw new PeftAdapterError(`module ${name} is listed twice`, file);
  seen.add(name);
  const [r, inF] = m.aShape;
  const [outF, rB] = m.bShape;
  if (m.A.length !== r * inF) {
    throw new PeftAdapterError(
      `A has ${m.A.length} values but aShape is [${r}, ${inF}]`,
      file,
      adapterKey(name, "A"),
    );
  }
  if (m.B.length !== outF * rB) {
    throw new PeftAdapterError(
      `B has ${m.B.length} values but bShape is [${outF}, ${rB}]`,
      file,
      adapterKey(name, "B"),
    );
  }
  if (r !== rB || !Number.isInteger(r) || r <= 0) {
    throw new PeftAdapterError(
      `A is [${r}, ${inF}] but B is [${outF}, ${rB}]: ranks must match`,
      file,
      adapterKey(name, "B"),
    );
  }
}

/** Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors`, each atomically. */
export async function writePeftAdapter(dir: string, adapter: PeftAdapterToWrite): Promise<void> {
  const folder = resolve(dir);
  const weightsPath = join(folder, ADAPTER_WEIGHTS_NAME);
  const configPath = join(folder, ADAPTER_CONFIG_NAME);
  const { config } = adapter;
  const dtype = adapter.dtype ?? "F32";

  const modules = [...adapter.modules].sort((a, b) =>
    a.module < b.module ? -1 : a.module > b.module ? 1 : 0,
  );
  const seen = new Set<string>();
  const baseRanks = { ...(config.rankPattern ?? {}) };
  const baseAlphas = { ...(config.alphaPattern ?? {}) };
  const extraRanks: Record<string, number> = {};
  const extraAlphas: Record<string, number> = {};
  for (const m of modules) {
    checkModule(m, configPath, seen);
    if (!isTargetModule(config.targetModules, m.module, configPath)) {
      throw new PeftAdapterError(
        `module ${m.module} is not matched by target_modules ${JSON.stringify(config.targetModules)}; PEFT would silently skip it`,
        configPath,
      );
    }
    const effective = moduleRankAndAlpha(
      {
        r: config.r,
        loraAlpha: config.loraAlpha,
        rankPattern: baseRanks,
        alphaPattern: baseAlphas,
      },
      m.module,
      configPath,
    );
    if (effective.rank !== m.aShape[0]) extraRanks[escapeRegex(m.module)] = m.aShape[0];
    if (m.alpha !== undefined && effective.alpha !== m.alpha)
      extraAlphas[escapeRegex(m.module)] = m.alpha;
  }

  const json: Record<string, unknown> = {
    // Defaults of a plain inference LoraConfig; any raw config given by the caller wins.
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    bias: "none",
    lora_dropout: 0,
    inference_mode: true,
    init_lora_weights: true,
    use_dora: false,
    ...(config.raw ?? {}),
    r: config.r,
    lora_alpha: config.loraAlpha,
    target_modules: config.targetModules,
    use_rslora: config.useRslora ?? false,
    fan_in_fan_out: config.fanInFanOut ?? false,
    rank_pattern: { ...extraRanks, ...baseRanks },
    alpha_pattern: { ...extraAlphas, ...baseAlphas },
    modules_to_save: config.modulesToSave ?? null,
    base_model_name_or_path: config.baseModelNameOrPath ?? null,
  };

  const tensors: TensorToWrite[] = modules.flatMap((m) => [
    {
      name: adapterKey(m.module, "A"),
      dtype,
      shape: [...m.aShape],
      data: () => encodeFromF32(m.A, dtype),
    },
    {
      name: adapterKey(m.module, "B"),
      dtype,
      shape: [...m.bShape],
      data: () => encodeFromF32(m.B, dtype),
    },
  ]);
  // Weights first: a folder whose config exists always has matching weights next to it.
  await writeSafetensors(weightsPath, tensors, { metadata: { format: "pt" } });
  await writeTextAtomic(configPath, `${JSON.stringify(json, null, 2)}\n`);
}

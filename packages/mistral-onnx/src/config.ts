import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MistralOnnxError } from "./errors.js";

export type Architecture = "MistralForCausalLM" | "LlamaForCausalLM";
const SUPPORTED: readonly Architecture[] = ["MistralForCausalLM", "LlamaForCausalLM"];

/** The parts of a Hugging Face `config.json` the graph depends on, validated and defaulted. */
export interface MistralConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Linear rope scaling factor (positions are divided by it); 1 when rope scaling is off. */
  ropeLinearFactor: number;
  /** Keys older than this many positions are masked (Mistral); null = full causal attention. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
  /** The whole config.json as read. */
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = raw[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new MistralOnnxError(`${file}: missing required field "${key}"`, { file });
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new MistralOnnxError(
      `${file}: field "${key}" must be a number, got ${JSON.stringify(v)}`,
      {
        file,
      },
    );
  }
  return v;
}

function posInt(
  raw: Record<string, unknown>,
  key: string,
  file: string,
  fallback?: number,
): number {
  const v = num(raw, key, file, fallback);
  if (!Number.isInteger(v) || v <= 0) {
    throw new MistralOnnxError(`${file}: field "${key}" must be a positive integer, got ${v}`, {
      file,
    });
  }
  return v;
}

/**
 * Rope settings live in `rope_scaling` + `rope_theta` (transformers 4) or `rope_parameters`
 * (transformers 5). Only the default and linear rope types are built; anything else would give
 * silently wrong logits, so it is an error.
 */
function parseRope(raw: Record<string, unknown>, file: string): { theta: number; factor: number } {
  const params = (raw.rope_parameters ?? raw.rope_scaling ?? null) as Record<
    string,
    unknown
  > | null;
  let theta = typeof raw.rope_theta === "number" ? raw.rope_theta : 10000;
  if (params && typeof params.rope_theta === "number") theta = params.rope_theta;
  if (params === null) return { theta, factor: 1 };
  if (typeof params !== "object") {
    throw new MistralOnnxError(`${file}: rope_scaling must be an object or null`, { file });
  }
  const type = (params.rope_type ?? params.type ?? "default") as string;
  if (type === "default") return { theta, factor: 1 };
  if (type === "linear") {
    const factor = params.factor;
    if (typeof factor !== "number" || !(factor > 0)) {
      throw new MistralOnnxError(`${file}: linear rope scaling needs a positive "factor"`, {
        file,
      });
    }
    return { theta, factor };
  }
  throw new MistralOnnxError(
    `${file}: unsupported rope scaling type "${type}" (supported: none/default, linear)`,
    { file },
  );
}

/** Validates a parsed config.json. `file` is only used in error messages. */
export function parseMistralConfig(
  raw: Record<string, unknown>,
  file = "config.json",
): MistralConfig {
  const archs = raw.architectures;
  // A config saved without a model instance has no "architectures"; model_type then decides.
  const byType: Record<string, Architecture> = {
    mistral: "MistralForCausalLM",
    llama: "LlamaForCausalLM",
  };
  const architecture = Array.isArray(archs)
    ? (archs[0] as string)
    : archs === undefined && typeof raw.model_type === "string"
      ? byType[raw.model_type]
      : undefined;
  if (!architecture || !SUPPORTED.includes(architecture as Architecture)) {
    throw new MistralOnnxError(
      `${file}: unsupported architecture ${JSON.stringify(architecture ?? null)} (supported: ${SUPPORTED.join(", ")})`,
      { file },
    );
  }
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new MistralOnnxError(`${file}: unsupported hidden_act "${String(act)}" (only silu)`, {
      file,
    });
  }
  for (const flag of ["attention_bias", "mlp_bias"]) {
    if (raw[flag] === true) {
      throw new MistralOnnxError(`${file}: ${flag}=true is not supported`, { file });
    }
  }
  const hiddenSize = posInt(raw, "hidden_size", file);
  const numHeads = posInt(raw, "num_attention_heads", file);
  const numKvHeads = posInt(raw, "num_key_value_heads", file, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new MistralOnnxError(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
      { file },
    );
  }
  const headDim = posInt(raw, "head_dim", file, Math.floor(hiddenSize / numHeads));
  if (headDim % 2 !== 0) {
    throw new MistralOnnxError(
      `${file}: head_dim must be even for rotary embeddings, got ${headDim}`,
      {
        file,
      },
    );
  }
  const rope = parseRope(raw, file);
  const sw = raw.sliding_window;
  const useSw = raw.use_sliding_window;
  let slidingWindow: number | null = null;
  if (typeof sw === "number" && useSw !== false) slidingWindow = sw;
  // Llama configs carry no sliding window; Mistral's may be null.
  if (architecture === "LlamaForCausalLM") slidingWindow = null;
  const eos = raw.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? (eos as number[]) : typeof eos === "number" ? [eos] : [];
  return {
    architecture: architecture as Architecture,
    vocabSize: posInt(raw, "vocab_size", file),
    hiddenSize,
    intermediateSize: posInt(raw, "intermediate_size", file),
    numLayers: posInt(raw, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(raw, "rms_norm_eps", file, 1e-6),
    ropeTheta: rope.theta,
    ropeLinearFactor: rope.factor,
    slidingWindow,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    bosTokenId: typeof raw.bos_token_id === "number" ? raw.bos_token_id : undefined,
    eosTokenIds,
    raw,
  };
}

export async function readMistralConfig(modelDir: string): Promise<MistralConfig> {
  const file = join(modelDir, "config.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new MistralOnnxError(`${file}: cannot read config (${(e as Error).message})`, { file });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MistralOnnxError(`${file}: invalid JSON (${(e as Error).message})`, { file });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new MistralOnnxError(`${file}: expected a JSON object`, { file });
  }
  return parseMistralConfig(raw as Record<string, unknown>, file);
}

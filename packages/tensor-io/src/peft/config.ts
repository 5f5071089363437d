/**
 * adapter_config.json of a PEFT LoRA adapter: parsing with validation, and PEFT's rules for
 * per-module rank/alpha (rank_pattern / alpha_pattern) and target-module matching.
 */
import { RE2JS } from "re2js";
import { PeftAdapterError } from "../errors.js";
import { describeJson } from "../json-safe.js";

export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  targetModules: string[] | string;
  useRslora: boolean;
  fanInFanOut: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  modulesToSave: string[] | null;
  baseModelNameOrPath: string | null;
  /** The whole adapter_config.json. */
  raw: Record<string, unknown>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberRecord(value: unknown, field: string, file: string): Record<string, number> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === "number" && v > 0)) {
    throw new PeftAdapterError(`${field} must be an object of positive numbers`, file);
  }
  return { ...(value as Record<string, number>) };
}

/** Validates a parsed adapter_config.json (`file` is only used in error messages). */
export function parsePeftConfig(json: unknown, file: string): PeftLoraConfig {
  if (!isRecord(json))
    throw new PeftAdapterError("adapter_config.json must be a JSON object", file);
  const peftType = json.peft_type;
  if (peftType !== undefined && peftType !== null && peftType !== "LORA") {
    throw new PeftAdapterError(
      `peft_type is ${describeJson(peftType)}; only LORA adapters are supported`,
      file,
    );
  }
  if (json.use_dora === true) {
    throw new PeftAdapterError(
      "use_dora is true; DoRA adapters (magnitude vectors) are not supported",
      file,
    );
  }
  if (json.lora_bias === true) {
    throw new PeftAdapterError("lora_bias is true; LoRA B biases are not supported", file);
  }
  const { r, lora_alpha: alpha } = json;
  if (typeof r !== "number" || !Number.isInteger(r) || r <= 0) {
    throw new PeftAdapterError(`r must be a positive integer, got ${describeJson(r)}`, file);
  }
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) {
    throw new PeftAdapterError(`lora_alpha must be a number, got ${describeJson(alpha)}`, file);
  }
  const targets = json.target_modules;
  let targetModules: string[] | string;
  if (targets === undefined || targets === null) targetModules = [];
  else if (typeof targets === "string") targetModules = targets;
  else if (Array.isArray(targets) && targets.every((t) => typeof t === "string"))
    targetModules = [...targets];
  else throw new PeftAdapterError("target_modules must be a list of names or a regex string", file);

  const bool = (field: string): boolean => {
    const v = json[field];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") throw new PeftAdapterError(`${field} must be a boolean`, file);
    return v;
  };
  const modules = json.modules_to_save;
  if (
    modules !== undefined &&
    modules !== null &&
    !(Array.isArray(modules) && modules.every((m) => typeof m === "string"))
  ) {
    throw new PeftAdapterError("modules_to_save must be a list of names or null", file);
  }
  const base = json.base_model_name_or_path;
  if (base !== undefined && base !== null && typeof base !== "string") {
    throw new PeftAdapterError("base_model_name_or_path must be a string or null", file);
  }
  const rankPattern = numberRecord(json.rank_pattern, "rank_pattern", file);
  const alphaPattern = numberRecord(json.alpha_pattern, "alpha_pattern", file);
  // Compile every user pattern now, so a bad one is reported against adapter_config.json.
  for (const key of Object.keys(rankPattern)) patternKeyRegex(key, "rank_pattern", file);
  for (const key of Object.keys(alphaPattern)) patternKeyRegex(key, "alpha_pattern", file);
  if (typeof targetModules === "string") targetRegex(targetModules, file);
  return {
    r,
    loraAlpha: alpha,
    targetModules,
    useRslora: bool("use_rslora"),
    fanInFanOut: bool("fan_in_fan_out"),
    rankPattern,
    alphaPattern,
    modulesToSave: Array.isArray(modules) ? [...(modules as string[])] : null,
    baseModelNameOrPath: typeof base === "string" ? base : null,
    raw: json,
  };
}

/**
 * User patterns run on RE2 (re2js, pure JS), whose matching time is linear in the input: a
 * JavaScript RegExp backtracks, so a key like "(.*)*X" from an untrusted config could hang a run.
 * RE2 lacks lookaround and backreferences; those are rejected with a message saying so.
 */
const RE2_LACKS: ReadonlyArray<[RegExp, string]> = [
  [/\(\?<?[=!]/, "lookaround ((?=...), (?!...), (?<=...), (?<!...))"],
  [/\\[1-9]|\(\?P=/, "backreferences (\\1, (?P=name))"],
];

/** Compiled patterns by source: configs repeat a few keys over many modules. */
const compiled = new Map<string, RE2JS>();
const MAX_COMPILED = 4096;

function compile(source: string, pattern: string, what: string, file: string): RE2JS {
  const hit = compiled.get(source);
  if (hit !== undefined) return hit;
  let re: RE2JS;
  try {
    re = RE2JS.compile(source);
  } catch (cause) {
    const lacking = RE2_LACKS.find(([test]) => test.test(pattern));
    const detail = (cause as Error).message;
    throw new PeftAdapterError(
      lacking === undefined
        ? `${what} is not a regular expression this reader supports (RE2 syntax, a subset of Python's re): ${detail}`
        : `${what} uses ${lacking[1]}, which the linear-time RE2 engine used for untrusted patterns does not support: ${detail}`,
      file,
      undefined,
      { cause },
    );
  }
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(source, re);
  return re;
}

/** PEFT's per-key regex `(.*\.)?(key)$`, used with Python `re.match` semantics (anchored at start). */
function patternKeyRegex(key: string, field: string, file: string): RE2JS {
  return compile(`(.*\\.)?(${key})$`, key, `${field} key ${describeJson(key, 200)}`, file);
}

function targetRegex(pattern: string, file: string): RE2JS {
  return compile(pattern, pattern, `target_modules pattern ${describeJson(pattern, 200)}`, file);
}

/**
 * PEFT's `get_pattern_key`: the first pattern key k for which `(.*\.)?(k)$` matches the module
 * name from its start (Python `re.match`), or undefined. `field` names the config field in errors.
 */
export function matchPatternKey(
  patternKeys: Iterable<string>,
  module: string,
  file: string,
  field = "pattern",
): string | undefined {
  for (const key of patternKeys) {
    if (patternKeyRegex(key, field, file).matcher(module).lookingAt()) return key;
  }
  return undefined;
}

/** Rank and alpha of one module after rank_pattern / alpha_pattern, as PEFT computes them. */
export function moduleRankAndAlpha(
  config: Pick<PeftLoraConfig, "r" | "loraAlpha" | "rankPattern" | "alphaPattern">,
  module: string,
  file: string,
): { rank: number; alpha: number } {
  const rankKey = matchPatternKey(Object.keys(config.rankPattern), module, file, "rank_pattern");
  const alphaKey = matchPatternKey(Object.keys(config.alphaPattern), module, file, "alpha_pattern");
  return {
    rank: rankKey === undefined ? config.r : config.rankPattern[rankKey]!,
    alpha: alphaKey === undefined ? config.loraAlpha : config.alphaPattern[alphaKey]!,
  };
}

/**
 * PEFT's target check: a regex string must match the whole name (Python `re.fullmatch`, here on
 * RE2); a list entry must equal or suffix-match.
 */
export function isTargetModule(
  targetModules: string[] | string,
  module: string,
  file: string,
): boolean {
  if (typeof targetModules === "string") return targetRegex(targetModules, file).matches(module);
  return targetModules.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Escapes a module name so PEFT's regex matching treats it literally. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

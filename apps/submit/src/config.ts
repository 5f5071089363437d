import { DEFAULT_STRATEGY } from "@merge/strategies";
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./errors.js";

/** What one run merges and how it answers the data; see README "Config format". */
export interface SubmitConfig {
  /** Base model: local folder (relative to the workspace root) or Hub `owner/name@revision`. */
  base: string;
  /** Expert PEFT adapters, same forms; a local entry may end in `/*` (every adapter folder in it). */
  experts: string[];
  /** Competition CSV to answer. */
  data: string;
  /** Predictions CSV to write. */
  out: string;
  strategy: {
    method: string;
    hyperparameters: Record<string, unknown>;
    /** Optional per-expert weights, one per expert after `/*` expansion. */
    expertWeights?: number[];
  };
  runtime: {
    dtype: "fp32" | "fp16";
    executionProvider: "cpu" | "cuda";
    threads?: number;
    deltaMode: "fold" | "side-branch";
    weightQuant: "none" | "int8" | "int4";
    generationBatchSize: number;
    maxNewTokens: number;
    choiceScore: "sum" | "mean";
    /** How a choice is tokenized for scoring (see @merge/mistral-onnx `ChoiceTokenization`). */
    choiceTokenization: "separate" | "joined";
    stop?: string[];
    /** Where built ONNX models are cached (default: <out dir>/cache). */
    cacheDir?: string;
  };
  hub: { offline?: boolean; cacheDir?: string };
  seed: number;
  /** Wall-clock budget for the whole run, merge and evaluation together. */
  budgetSeconds: number;
}

export const DEFAULT_CONFIG: SubmitConfig = {
  base: "data/zoo/base",
  experts: ["data/zoo/experts/*"],
  data: "data/test.csv",
  out: "output/test.csv",
  strategy: { method: DEFAULT_STRATEGY, hyperparameters: {} },
  runtime: {
    dtype: "fp32",
    executionProvider: "cpu",
    deltaMode: "fold",
    weightQuant: "none",
    generationBatchSize: 8,
    maxNewTokens: 64,
    choiceScore: "sum",
    choiceTokenization: "separate",
  },
  hub: {},
  seed: 0,
  budgetSeconds: 3600,
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class Fields {
  constructor(
    readonly file: string,
    readonly obj: Json,
    readonly prefix: string,
    readonly allowed: readonly string[],
  ) {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        throw new ConfigError(
          file,
          `unknown field "${prefix}${key}" (allowed: ${allowed.map((a) => prefix + a).join(", ")})`,
        );
      }
    }
  }
  private bad(key: string, what: string): never {
    throw new ConfigError(
      this.file,
      `"${this.prefix}${key}" must be ${what}, found ${JSON.stringify(this.obj[key])}`,
    );
  }
  string(key: string, fallback: string): string {
    const v = this.obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== "string" || v.trim() === "") this.bad(key, "a non-empty string");
    return v;
  }
  optionalString(key: string): string | undefined {
    return this.obj[key] === undefined ? undefined : this.string(key, "");
  }
  integer(key: string, fallback: number, min: number): number {
    const v = this.obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      this.bad(key, `an integer ≥ ${min}`);
    }
    return v;
  }
  positive(key: string, fallback: number): number {
    const v = this.obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v))
      this.bad(key, "a positive number");
    return v;
  }
  oneOf<T extends string>(key: string, options: readonly T[], fallback: T): T {
    const v = this.obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== "string" || !options.includes(v as T)) {
      this.bad(key, `one of ${options.map((o) => JSON.stringify(o)).join(", ")}`);
    }
    return v as T;
  }
  boolean(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") this.bad(key, "true or false");
    return v;
  }
  stringList(key: string): string[] | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s !== "")) {
      this.bad(key, "a list of non-empty strings");
    }
    return v as string[];
  }
  object(key: string): Json {
    const v = this.obj[key];
    if (v === undefined) return {};
    if (!isObject(v)) this.bad(key, "a mapping");
    return v;
  }
}

/** Validates a parsed config object, filling defaults. `file` is only used in messages. */
export function parseConfig(raw: unknown, file: string): SubmitConfig {
  if (raw === null || raw === undefined) raw = {};
  if (!isObject(raw)) throw new ConfigError(file, "the config must be a mapping at the top level");
  const d = DEFAULT_CONFIG;
  const top = new Fields(file, raw, "", [
    "base",
    "experts",
    "data",
    "out",
    "strategy",
    "runtime",
    "hub",
    "seed",
    "budgetSeconds",
  ]);
  const experts = top.stringList("experts") ?? d.experts;
  if (experts.length === 0) throw new ConfigError(file, '"experts" must name at least one expert');

  const s = new Fields(file, top.object("strategy"), "strategy.", [
    "method",
    "hyperparameters",
    "expertWeights",
  ]);
  const weights = s.obj.expertWeights;
  if (
    weights !== undefined &&
    !(Array.isArray(weights) && weights.every((w) => typeof w === "number" && Number.isFinite(w)))
  ) {
    throw new ConfigError(file, '"strategy.expertWeights" must be a list of numbers');
  }

  const r = new Fields(file, top.object("runtime"), "runtime.", [
    "dtype",
    "executionProvider",
    "threads",
    "deltaMode",
    "weightQuant",
    "generationBatchSize",
    "maxNewTokens",
    "choiceScore",
    "choiceTokenization",
    "stop",
    "cacheDir",
  ]);
  const h = new Fields(file, top.object("hub"), "hub.", ["offline", "cacheDir"]);
  const dr = d.runtime;
  const threads = r.obj.threads === undefined ? undefined : r.integer("threads", 0, 1);
  const stop = r.stringList("stop");
  const cacheDir = r.optionalString("cacheDir");
  const offline = h.boolean("offline");
  const hubCache = h.optionalString("cacheDir");
  return {
    base: top.string("base", d.base),
    experts,
    data: top.string("data", d.data),
    out: top.string("out", d.out),
    strategy: {
      method: s.string("method", d.strategy.method),
      hyperparameters: s.object("hyperparameters"),
      ...(weights !== undefined ? { expertWeights: weights as number[] } : {}),
    },
    runtime: {
      dtype: r.oneOf("dtype", ["fp32", "fp16"] as const, dr.dtype),
      executionProvider: r.oneOf(
        "executionProvider",
        ["cpu", "cuda"] as const,
        dr.executionProvider,
      ),
      ...(threads !== undefined ? { threads } : {}),
      deltaMode: r.oneOf("deltaMode", ["fold", "side-branch"] as const, dr.deltaMode),
      weightQuant: r.oneOf("weightQuant", ["none", "int8", "int4"] as const, dr.weightQuant),
      generationBatchSize: r.integer("generationBatchSize", dr.generationBatchSize, 1),
      maxNewTokens: r.integer("maxNewTokens", dr.maxNewTokens, 1),
      choiceScore: r.oneOf("choiceScore", ["sum", "mean"] as const, dr.choiceScore),
      choiceTokenization: r.oneOf(
        "choiceTokenization",
        ["separate", "joined"] as const,
        dr.choiceTokenization,
      ),
      ...(stop !== undefined ? { stop } : {}),
      ...(cacheDir !== undefined ? { cacheDir } : {}),
    },
    hub: {
      ...(offline !== undefined ? { offline } : {}),
      ...(hubCache !== undefined ? { cacheDir: hubCache } : {}),
    },
    seed: top.integer("seed", d.seed, 0),
    budgetSeconds: top.positive("budgetSeconds", d.budgetSeconds),
  };
}

/** Reads a JSON (.json) or YAML (anything else) config file. */
export async function loadConfig(file: string): Promise<SubmitConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read the config: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let raw: unknown;
  try {
    raw = extname(file).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const kind = extname(file).toLowerCase() === ".json" ? "JSON" : "YAML";
    throw new ConfigError(file, `not valid ${kind}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(raw, file);
}

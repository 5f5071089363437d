import {
  CHOICE_SCORES,
  DEFAULT_CHOICE_SCORE,
  DEFAULT_GENERATION_BATCH_SIZE,
  DEFAULT_MAX_NEW_TOKENS,
} from "@merge/eval";
import {
  CHOICE_SCORINGS,
  CHOICE_TOKENIZATIONS,
  DEFAULT_CHOICE_SCORING,
  DEFAULT_CHOICE_TOKENIZATION,
  DEFAULT_DELTA_MODE,
  DEFAULT_DTYPE,
  DEFAULT_EXECUTION_PROVIDER,
  DEFAULT_FUSED_OPS,
  DEFAULT_GENERATION_GRAPH,
  DEFAULT_WEIGHT_QUANT,
  DELTA_MODES,
  EXECUTION_PROVIDERS,
  FUSED_OPS,
  MODEL_DTYPES,
  WEIGHT_QUANTS,
  GENERATION_GRAPHS,
} from "@merge/mistral-onnx";
import { DEFAULT_STRATEGY, describeParam, listStrategies, type ParamSpec } from "@merge/strategies";
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "./errors.js";

const nonEmpty = "must be a non-empty string";
const stringList = "must be a list of non-empty strings";

/** A non-empty string (spaces alone do not count). */
function text(message = nonEmpty) {
  return z.string({ error: message }).refine((v) => v.trim() !== "", { error: message });
}

function integerAtLeast(min: number) {
  const message = `must be an integer ≥ ${min}`;
  return z.int({ error: message }).min(min, { error: message });
}

function oneOf<const T extends readonly [string, ...string[]]>(options: T) {
  return z.enum(options, {
    error: `must be one of ${options.map((o) => JSON.stringify(o)).join(", ")}`,
  });
}

function list<T extends z.ZodType>(element: T, message: string) {
  return z.array(element, { error: message });
}

const mapping = { error: "must be a mapping" } as const;

const strategyNames = listStrategies().map((s) => s.name) as [string, ...string[]];

const STRATEGY_SCHEMA = z.strictObject(
  {
    method: oneOf(strategyNames)
      .default(DEFAULT_STRATEGY)
      .meta({ description: "Merge method from @merge/strategies (see --list-methods)." }),
    hyperparameters: z.record(z.string(), z.unknown(), mapping).default({}).meta({
      description:
        "The method's hyperparameters; each method declares its own with types, defaults and ranges (--list-methods).",
    }),
    expertWeights: list(
      z.number({ error: "must be a list of numbers" }),
      "must be a list of numbers",
    )
      .optional()
      .meta({ description: "Optional per-expert weights, one per expert after `/*` expansion." }),
  },
  mapping,
);

const RUNTIME_SCHEMA = z.strictObject(
  {
    dtype: oneOf(MODEL_DTYPES).default(DEFAULT_DTYPE),
    executionProvider: oneOf(EXECUTION_PROVIDERS).default(DEFAULT_EXECUTION_PROVIDER),
    threads: integerAtLeast(1).optional().meta({
      description: "Intra-op threads (default: onnxruntime's choice, all physical cores).",
    }),
    deltaMode: oneOf(DELTA_MODES).default(DEFAULT_DELTA_MODE),
    weightQuant: oneOf(WEIGHT_QUANTS).default(DEFAULT_WEIGHT_QUANT),
    fusedOps: oneOf(FUSED_OPS).default(DEFAULT_FUSED_OPS).meta({
      description:
        'Build the decoder with onnxruntime contrib ops ("contrib": GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization) or standard ONNX ops only ("none"); see @merge/mistral-onnx `fusedOps`.',
    }),
    generationBatchSize: integerAtLeast(1).default(DEFAULT_GENERATION_BATCH_SIZE),
    maxNewTokens: integerAtLeast(1).default(DEFAULT_MAX_NEW_TOKENS),
    choiceScore: oneOf(CHOICE_SCORES).default(DEFAULT_CHOICE_SCORE),
    choiceTokenization: oneOf(CHOICE_TOKENIZATIONS).default(DEFAULT_CHOICE_TOKENIZATION).meta({
      description:
        "How a choice is tokenized for scoring (see @merge/mistral-onnx `ChoiceTokenization`).",
    }),
    choiceScoring: oneOf(CHOICE_SCORINGS).default(DEFAULT_CHOICE_SCORING).meta({
      description:
        'How a multiple-choice row runs: "shared-cache" the prompt once, then one forward per choice on its KV cache; "batched" all prompt + choice sequences of the row as one left-padded forward (one forward per row, no cache crossing host and device). Same scores and predictions; does not change the build (see @merge/mistral-onnx `ChoiceScoring`).',
    }),
    generationGraph: oneOf(GENERATION_GRAPHS).default(DEFAULT_GENERATION_GRAPH).meta({
      description:
        'Where greedy generation decodes: "none" on the host, one onnxruntime call per token; "loop" inside generate.onnx (an ONNX Loop, one call per batch, the KV cache staying on the device). Same tokens; every build has generate.onnx, so this does not change the build.',
    }),
    stop: list(text(stringList), stringList).optional(),
    cacheDir: text().optional().meta({
      description:
        "Where built ONNX models are cached (default: $LORA_MERGE_CACHE, else $XDG_CACHE_HOME/lora-merge/onnx, else ~/.cache/lora-merge/onnx; one cache per user, so a new --out reuses builds).",
    }),
  },
  mapping,
);

const HUB_SCHEMA = z.strictObject(
  {
    offline: z.boolean({ error: "must be true or false" }).optional(),
    cacheDir: text().optional(),
  },
  mapping,
);

/** The config file's schema, built from the option lists the packages export. */
export const CONFIG_SCHEMA = z
  .strictObject(
    {
      base: text().default("data/zoo/base").meta({
        description:
          "Base model: local folder (relative to the workspace root) or Hub `owner/name@revision`.",
      }),
      experts: list(text(stringList), stringList)
        .min(1, { error: "must name at least one expert" })
        .default(["data/zoo/experts/*"])
        .meta({
          description:
            "Expert PEFT adapters, same forms; a local entry may end in `/*` (every adapter folder in it).",
        }),
      data: text().default("data/test.csv").meta({ description: "Competition CSV to answer." }),
      out: text().default("output/test.csv").meta({ description: "Predictions CSV to write." }),
      strategy: STRATEGY_SCHEMA.prefault({}),
      runtime: RUNTIME_SCHEMA.prefault({}),
      hub: HUB_SCHEMA.prefault({}),
      seed: integerAtLeast(0).default(0),
      budgetSeconds: z
        .number({ error: "must be a positive number" })
        .positive({ error: "must be a positive number" })
        .default(3600)
        .meta({
          description: "Wall-clock budget for the whole run, merge and evaluation together.",
        }),
    },
    mapping,
  )
  .meta({
    title: "merge-submit config",
    description: 'See apps/submit/README.md "Config format".',
  });

/** What one run merges and how it answers the data; see README "Config format". */
export type SubmitConfig = z.output<typeof CONFIG_SCHEMA>;

/** The JSON Schema of the config file (configs/config.schema.json; `pnpm --filter submit schema`). */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(CONFIG_SCHEMA, {
    io: "input",
    target: "draft-2020-12",
  }) as unknown as {
    properties: { strategy: Record<string, unknown> };
  };
  // Each method's hyperparameters from its declarations, for editors: `if method is X then
  // hyperparameters has X's params` (planRun checks the same with strategy.checkHyper).
  schema.properties.strategy.allOf = listStrategies().map((s) => ({
    if: { properties: { method: { const: s.name } } },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keywords, never awaited
    then: {
      properties: {
        hyperparameters: {
          type: "object",
          additionalProperties: false,
          properties: Object.fromEntries(
            Object.entries(s.params).map(([name, p]) => [name, paramJsonSchema(p)]),
          ),
        },
      },
    },
  }));
  return schema as unknown as Record<string, unknown>;
}

/** The JSON Schema of one declared hyperparameter. */
function paramJsonSchema(p: ParamSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: p.type === "number" && p.integer ? "integer" : p.type,
    default: p.default,
    description:
      describeParam("value", p).replace(/^value: /, "") +
      (p.description ? ` (${p.description})` : ""),
  };
  if (p.type === "string" && p.choices !== undefined) out.enum = [...p.choices];
  if (p.type === "number") {
    if (p.min !== undefined) out[p.minExclusive ? "exclusiveMinimum" : "minimum"] = p.min;
    if (p.max !== undefined) out[p.maxExclusive ? "exclusiveMaximum" : "maximum"] = p.max;
  }
  return out;
}

/** configs/config.schema.json as written by `pnpm --filter submit schema`. */
export function configSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/** The allowed field names of the object at `path` in the schema. */
function allowedKeys(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = CONFIG_SCHEMA;
  for (const key of path) {
    const shape = objectShape(schema);
    const next = shape?.[String(key)];
    if (next === undefined) return [];
    schema = next;
  }
  return Object.keys(objectShape(schema) ?? {});
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let s: z.ZodType = schema;
  // Unwrap default/prefault/optional wrappers down to the object.
  for (let i = 0; i < 5 && !(s instanceof z.ZodObject); i++) {
    const inner = (s.def as { innerType?: z.ZodType }).innerType;
    if (inner === undefined) return undefined;
    s = inner;
  }
  return s instanceof z.ZodObject ? (s.shape as Record<string, z.ZodType>) : undefined;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key as string];
  }
  return v;
}

/** One zod issue as `"runtime.dtype" must be one of "fp32", "fp16", found "bf16"`. */
function issueMessage(raw: unknown, issue: z.core.$ZodIssue): string {
  // A bad list element is reported for the list ("experts" must be a list of …).
  const path = [...issue.path];
  while (path.length > 0 && typeof path.at(-1) === "number") path.pop();
  const prefix = path.length > 0 ? `${path.join(".")}.` : "";
  if (issue.code === "unrecognized_keys") {
    const allowed = allowedKeys(path).map((a) => prefix + a);
    return issue.keys
      .map((k) => `unknown field "${prefix}${k}" (allowed: ${allowed.join(", ")})`)
      .join("; ");
  }
  return `"${path.join(".")}" ${issue.message}, found ${JSON.stringify(valueAt(raw, path))}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates a parsed config object, filling defaults. `file` is only used in messages. */
export function parseConfig(raw: unknown, file: string): SubmitConfig {
  if (raw === null || raw === undefined) raw = {};
  if (!isObject(raw)) throw new ConfigError(file, "the config must be a mapping at the top level");
  const result = CONFIG_SCHEMA.safeParse(raw);
  if (result.success) return result.data;
  const messages = [...new Set(result.error.issues.map((i) => issueMessage(raw, i)))];
  const field = result.error.issues[0]?.path.join(".");
  throw new ConfigError(file, messages.join(`\n${file}: `), field ? { field } : {});
}

export const DEFAULT_CONFIG: SubmitConfig = parseConfig({}, "(built-in default)");

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

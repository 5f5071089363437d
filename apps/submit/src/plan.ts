import { homedir } from "node:os";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ONNX_BUILD_FORMAT } from "@merge/mistral-onnx";
import { type StrategyDefinition, StrategyError, getStrategy } from "@merge/strategies";
import { cacheKey } from "./cache.js";
import type { SubmitConfig } from "./config.js";
import { ConfigError, SubmitError } from "./errors.js";
import { type ExportFlags, type ExportPlan, planExports } from "./export-plan.js";
import { type OutputJob, planOutputs } from "./outputs.js";
import { type PromptMode, planPromptMode } from "./prompt-mode.js";
import { resolveFrom } from "./workspace.js";

/** The packages whose code decides a built model's bytes; their versions go into the cache key. */
export const KEYED_PACKAGES = [
  "@merge/strategies",
  "@merge/mistral-onnx",
  "@merge/tensor-io",
  "@merge/lora",
] as const;

export type CodeVersions = Record<(typeof KEYED_PACKAGES)[number], string>;

let cachedVersions: CodeVersions | undefined;

/**
 * The installed versions of KEYED_PACKAGES, read from their package.json (found as
 * node_modules/<name> in this file's folder or a parent, as pnpm links workspace packages).
 */
export function codeVersions(from = dirname(fileURLToPath(import.meta.url))): CodeVersions {
  if (cachedVersions !== undefined) return cachedVersions;
  const out: Record<string, string> = {};
  for (const name of KEYED_PACKAGES) {
    let dir = from;
    for (;;) {
      const file = join(dir, "node_modules", name, "package.json");
      let text: string | undefined;
      try {
        text = readFileSync(file, "utf8");
      } catch {
        text = undefined;
      }
      if (text !== undefined) {
        const pkg = JSON.parse(text) as { name?: string; version?: string };
        if (pkg.name === name && typeof pkg.version === "string") {
          out[name] = pkg.version;
          break;
        }
      }
      const parent = dirname(dir);
      if (parent === dir) {
        throw new SubmitError(
          `cannot find the package.json of ${name} (needed for the build cache key) above ${from}`,
          1,
          { where: { file: from } },
        );
      }
      dir = parent;
    }
  }
  cachedVersions = out as CodeVersions;
  return cachedVersions;
}

/** What the command line overrides in the config, and what the run does. */
export interface RunOverrides extends ExportFlags {
  method?: string;
  /** `--hyper KEY=VALUE` overrides of the method's hyperparameters (after any --method). */
  hyper?: Record<string, unknown>;
  data?: string;
  out?: string;
  budgetSeconds?: number;
  evalLabelled?: string[];
  /** `--prompt TEXT`: answer this prompt on the merged model, streamed, instead of the CSV. */
  prompt?: string;
  /** `--chat`: a conversation on the merged model instead of the CSV. */
  chat?: boolean;
  /** `--max-new-tokens N`: overrides runtime.maxNewTokens. */
  maxNewTokens?: number;
}

/** The command-line side of a run, as planRun takes it. */
export interface RunFlags extends RunOverrides {
  /** Workspace root: relative paths (flags and config) resolve against it. */
  root: string;
  /** The config file the config came from (null = the built-in default), for messages. */
  configFile: string | null;
  /** Versions of KEYED_PACKAGES (default: read by codeVersions()). */
  versions?: CodeVersions;
}

/** Everything that decides a built model's bytes except the model sources' fingerprints. */
export interface BuildKeySettings {
  /** A new builder output format must not reuse builds of the old one. */
  onnxFormat: string;
  /** A change of merge, build, tensor or LoRA code (a new version) must not reuse old builds. */
  versions: CodeVersions;
  method: string;
  hyperparameters: Record<string, unknown>;
  expertWeights: number[] | null;
  seed: number;
  dtype: SubmitConfig["runtime"]["dtype"];
  deltaMode: SubmitConfig["runtime"]["deltaMode"];
  weightQuant: SubmitConfig["runtime"]["weightQuant"];
  fusedOps: SubmitConfig["runtime"]["fusedOps"];
}

/** The validated run: every check that needs no model file done, and the cache key settings. */
export interface RunPlan {
  configFile: string | null;
  /** The config with the command-line overrides applied. */
  config: SubmitConfig;
  strategy: StrategyDefinition<Record<string, unknown>>;
  /** The method's defaults overridden by the config's hyperparameters, fully validated. */
  hyper: Record<string, unknown>;
  mergeOnly: boolean;
  /** Absolute folder for --save-adapter, or null. */
  saveAdapter: string | null;
  /** Absolute folder for --save-onnx, or null. */
  saveOnnx: string | null;
  /** --save-model, --save-adapter and their options, checked (see planExports). */
  exports: ExportPlan;
  outPath: string;
  outDir: string;
  /** Where ONNX builds are cached. */
  cacheRoot: string;
  /** The CSVs to answer and where their predictions go (empty with --merge-only). */
  outputs: OutputJob[];
  /** Whether the config's data CSV is answered (not with --eval-labelled alone). */
  withData: boolean;
  /** --prompt / --chat (then no CSV is answered), or null. */
  promptMode: PromptMode | null;
  keySettings: BuildKeySettings;
}

/** The build cache key's parts: the settings plus the base's and experts' fingerprints. */
export function buildKeyParts(
  settings: BuildKeySettings,
  base: string,
  experts: readonly string[],
): BuildKeySettings & { base: string; experts: string[] } {
  return { ...settings, base, experts: [...experts] };
}

/** The build cache key (a short hex hash of buildKeyParts). */
export function buildCacheKey(
  settings: BuildKeySettings,
  base: string,
  experts: readonly string[],
): string {
  return cacheKey(buildKeyParts(settings, base, experts));
}

/**
 * Applies the flags to the config and validates everything that needs no model or data file:
 * flag combinations, the method and its hyperparameters (strategy.checkHyper: names, types,
 * choices, ranges), what --save-adapter can hold, output paths, and the cache key settings.
 * Pure apart from reading package versions: nothing is written, no tensor is read.
 */
export function planRun(config: SubmitConfig, flags: RunFlags): RunPlan {
  const promptMode = planPromptMode(flags);
  const c: SubmitConfig = structuredClone(config);
  if (flags.method !== undefined) {
    // Another method's hyperparameters do not carry over.
    if (flags.method !== c.strategy.method) c.strategy.hyperparameters = {};
    c.strategy.method = flags.method;
  }
  if (flags.hyper !== undefined) {
    c.strategy.hyperparameters = { ...c.strategy.hyperparameters, ...flags.hyper };
  }
  if (flags.data !== undefined) c.data = flags.data;
  if (flags.out !== undefined) c.out = flags.out;
  if (flags.budgetSeconds !== undefined) {
    if (!(flags.budgetSeconds > 0))
      throw new SubmitError("--budget must be a positive number of seconds");
    c.budgetSeconds = flags.budgetSeconds;
  }
  if (flags.maxNewTokens !== undefined) {
    if (!Number.isInteger(flags.maxNewTokens) || flags.maxNewTokens < 1)
      throw new SubmitError("--max-new-tokens must be a whole number of at least 1");
    c.runtime.maxNewTokens = flags.maxNewTokens;
  }

  const strategy = getStrategy(c.strategy.method);
  let hyper: Record<string, unknown>;
  try {
    hyper = strategy.checkHyper(c.strategy.hyperparameters);
  } catch (err) {
    if (!(err instanceof StrategyError)) throw err;
    throw new ConfigError(
      flags.configFile ?? "(built-in default config)",
      `strategy.hyperparameters: ${err.message}`,
      { cause: err, field: "strategy.hyperparameters" },
    );
  }
  const mergeOnly = flags.mergeOnly ?? false;
  // What --save-model / --save-adapter can hold for this method, refused before any tensor.
  const exports = planExports(strategy, flags);

  const outPath = resolveFrom(flags.root, c.out);
  const outDir = dirname(outPath);
  const labelled = flags.evalLabelled ?? [];
  const withData = labelled.length === 0 || flags.data !== undefined;
  // Where each input's predictions go, checked for collisions before anything is read.
  const outputs =
    mergeOnly || promptMode !== null
      ? []
      : planOutputs(flags.root, outPath, withData ? c.data : undefined, labelled);

  return {
    configFile: flags.configFile,
    config: c,
    strategy,
    hyper,
    mergeOnly,
    saveAdapter: exports.saveAdapter,
    saveOnnx: exports.saveOnnx,
    exports,
    outPath,
    outDir,
    cacheRoot: resolveFrom(flags.root, c.runtime.cacheDir ?? defaultCacheDir()),
    outputs,
    withData,
    promptMode,
    keySettings: {
      onnxFormat: ONNX_BUILD_FORMAT,
      versions: flags.versions ?? codeVersions(),
      method: strategy.name,
      hyperparameters: hyper,
      expertWeights: c.strategy.expertWeights ?? null,
      seed: c.seed,
      dtype: c.runtime.dtype,
      deltaMode: c.runtime.deltaMode,
      weightQuant: c.runtime.weightQuant,
      fusedOps: c.runtime.fusedOps,
    },
  };
}

/**
 * Where ONNX builds are cached when the config names no runtime.cacheDir: one folder per user
 * ($LORA_MERGE_CACHE, else $XDG_CACHE_HOME/lora-merge, else ~/.cache/lora-merge), not under the
 * output folder, so a new --out reuses earlier builds. The key carries the code versions, so a
 * shared cache never serves a build of other code.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LORA_MERGE_CACHE) return env.LORA_MERGE_CACHE;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "lora-merge", "onnx");
}

/**
 * Parses repeated `--hyper KEY=VALUE` flags: VALUE as JSON when it parses (numbers, booleans,
 * quoted strings), else as a plain string; the plan then checks them against the method.
 */
export function parseHyperFlags(items: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw new SubmitError(
        `--hyper ${JSON.stringify(item)}: expected KEY=VALUE, e.g. --hyper density=0.5`,
      );
    }
    const key = item.slice(0, eq).trim();
    const raw = item.slice(eq + 1).trim();
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // not JSON: a plain string such as --hyper method=ties
    }
    out[key] = value;
  }
  return out;
}

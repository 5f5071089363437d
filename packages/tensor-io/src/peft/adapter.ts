/**
 * Reading a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors). All
 * structure is checked at open from the safetensors header alone — every lora_A has its lora_B,
 * both are matrices, and their shared dimension equals the module's rank — so reading a module
 * later only touches that module's two tensors.
 */
import { access } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PeftAdapterError } from "../errors.js";
import { NotRegularFileError, readRegularFile } from "../fs-safe.js";
import { jsonNestingDepth, MAX_CONFIG_DEPTH } from "../json-safe.js";
import { decodeUtf8Strict } from "../utf8.js";
import { SafetensorsFile } from "../safetensors/file.js";
import type { TensorInfo } from "../safetensors/types.js";
import {
  isTargetModule,
  moduleRankAndAlpha,
  type PeftLoraConfig,
  parsePeftConfig,
} from "./config.js";
import { parseAdapterKey } from "./keys.js";

export const ADAPTER_CONFIG_NAME = "adapter_config.json";
export const ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors";
export const ADAPTER_PICKLE_NAME = "adapter_model.bin";

export interface PeftLoraModuleTensors {
  /** Canonical module name, e.g. "model.layers.3.self_attn.q_proj". */
  module: string;
  /** After rank_pattern / alpha_pattern. */
  rank: number;
  alpha: number;
  /** r × in, as stored (fan_in_fan_out not undone). */
  A: Float32Array;
  aShape: [number, number];
  /** out × r. */
  B: Float32Array;
  bShape: [number, number];
}

interface ModuleEntry {
  rank: number;
  alpha: number;
  a: TensorInfo;
  b: TensorInfo;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function readConfig(dir: string): Promise<PeftLoraConfig> {
  const path = join(dir, ADAPTER_CONFIG_NAME);
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path);
  } catch (cause) {
    if (cause instanceof NotRegularFileError) {
      throw new PeftAdapterError(cause.message, path, undefined, { cause });
    }
    throw new PeftAdapterError(
      `cannot read ${ADAPTER_CONFIG_NAME} (is this a PEFT adapter folder?)`,
      path,
      undefined,
      {
        cause,
      },
    );
  }
  const decoded = decodeUtf8Strict(bytes);
  if (!decoded.ok) {
    throw new PeftAdapterError(
      `not valid UTF-8: invalid byte sequence at byte ${decoded.offset} (line ${decoded.line})`,
      path,
    );
  }
  const { text } = decoded;
  if (jsonNestingDepth(text, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH) {
    throw new PeftAdapterError(
      `JSON nests more than ${MAX_CONFIG_DEPTH} levels deep (Python's json.loads, which PEFT uses, cannot load it either)`,
      path,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new PeftAdapterError(`not valid JSON (${(cause as Error).message})`, path, undefined, {
      cause,
    });
  }
  return parsePeftConfig(json, path);
}

async function openWeights(dir: string): Promise<SafetensorsFile> {
  const path = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!(await exists(path))) {
    const pickle = join(dir, ADAPTER_PICKLE_NAME);
    if (await exists(pickle)) {
      throw new PeftAdapterError(
        "this adapter is a PyTorch pickle and is not loaded: unpickling can run arbitrary code, and " +
          "reading it needs a Python runtime. Convert it once with Python: " +
          `python -c "import torch; from safetensors.torch import save_file; save_file(torch.load('${ADAPTER_PICKLE_NAME}', weights_only=True), '${ADAPTER_WEIGHTS_NAME}')"`,
        pickle,
      );
    }
    throw new PeftAdapterError(`missing ${ADAPTER_WEIGHTS_NAME}`, path);
  }
  return SafetensorsFile.open(path);
}

function matrixShape(info: TensorInfo, file: string): [number, number] {
  if (info.shape.length !== 2) {
    throw new PeftAdapterError(
      `LoRA weight must be 2-D, got shape [${info.shape.join(", ")}]`,
      file,
      info.name,
    );
  }
  return [info.shape[0]!, info.shape[1]!];
}

/**
 * Whether PEFT would apply `module`'s factors: it builds LoRA layers only for modules that
 * target_modules names (a list entry equal to the name or a suffix after a dot, or a regex
 * string matching it whole; "all-linear" and an absent list keep every module) and loads no
 * other keys. Factors for other modules are ignored, here as there.
 */
function isApplied(config: PeftLoraConfig, module: string, file: string): boolean {
  const t = config.targetModules;
  if (t === "all-linear" || (Array.isArray(t) && t.length === 0)) return true;
  return isTargetModule(t, module, file);
}

function indexModules(
  config: PeftLoraConfig,
  weights: SafetensorsFile,
  configFile: string,
): { modules: Map<string, ModuleEntry>; ignored: string[] } {
  const file = weights.path;
  const parts = new Map<string, { a?: TensorInfo; b?: TensorInfo }>();
  for (const info of weights.tensors.values()) {
    const key = parseAdapterKey(info.name);
    if (key.kind === "unsupported") throw new PeftAdapterError(key.reason, file, info.name);
    if (key.kind === "other") continue; // e.g. modules_to_save weights: not LoRA factors
    const slot = parts.get(key.module) ?? {};
    const field = key.part === "A" ? "a" : "b";
    if (slot[field] !== undefined) {
      throw new PeftAdapterError(
        `module ${key.module} has two lora_${key.part} tensors (${slot[field].name}); one adapter per file is supported`,
        file,
        info.name,
      );
    }
    slot[field] = info;
    parts.set(key.module, slot);
  }

  const modules = new Map<string, ModuleEntry>();
  const ignored: string[] = [];
  // Sorted, so the first error reported is the same whatever the file's tensor order.
  for (const [module, { a, b }] of [...parts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
    if (a === undefined || b === undefined) {
      const have = (a ?? b)!;
      throw new PeftAdapterError(
        `lora_${a === undefined ? "A" : "B"} is missing for module ${module} (found only ${have.name})`,
        file,
        have.name,
      );
    }
    const [aRows] = matrixShape(a, file);
    const [, bCols] = matrixShape(b, file);
    const { rank, alpha } = moduleRankAndAlpha(config, module, file);
    if (aRows !== rank) {
      throw new PeftAdapterError(
        `lora_A has ${aRows} rows but the config gives module ${module} rank ${rank} (r / rank_pattern)`,
        file,
        a.name,
      );
    }
    if (bCols !== rank) {
      throw new PeftAdapterError(
        `lora_B has ${bCols} columns but module ${module} has rank ${rank}`,
        file,
        b.name,
      );
    }
    if (isApplied(config, module, configFile)) modules.set(module, { rank, alpha, a, b });
    else ignored.push(module);
  }
  return { modules, ignored };
}

export class PeftAdapter {
  readonly dir: string;
  readonly config: PeftLoraConfig;
  private readonly weights: SafetensorsFile;
  private readonly byModule: Map<string, ModuleEntry>;
  private readonly ignored: readonly string[];

  private constructor(
    dir: string,
    config: PeftLoraConfig,
    weights: SafetensorsFile,
    index: { modules: Map<string, ModuleEntry>; ignored: string[] },
  ) {
    this.dir = dir;
    this.config = config;
    this.weights = weights;
    this.byModule = index.modules;
    this.ignored = Object.freeze([...index.ignored]);
  }

  /** Opens adapter_config.json + adapter_model.safetensors in `dir` and validates their structure. */
  static async open(dir: string): Promise<PeftAdapter> {
    const folder = resolve(dir);
    const config = await readConfig(folder);
    const weights = await openWeights(folder);
    try {
      return new PeftAdapter(
        folder,
        config,
        weights,
        indexModules(config, weights, join(folder, ADAPTER_CONFIG_NAME)),
      );
    } catch (error) {
      await weights.close();
      throw error;
    }
  }

  /**
   * Modules whose factors are in the file but that target_modules does not name: PEFT ignores
   * them, and so does this reader (they are not in modules()). Sorted.
   */
  ignoredModules(): string[] {
    return [...this.ignored];
  }

  /** Canonical module names whose factors PEFT applies (target_modules respected), sorted. */
  modules(): string[] {
    return [...this.byModule.keys()].sort();
  }

  /** Whether the adapter has LoRA factors for this canonical module. */
  hasModule(module: string): boolean {
    return this.byModule.has(module);
  }

  /** Tensor names in the file that are not LoRA factors (e.g. modules_to_save weights). */
  otherTensors(): string[] {
    return [...this.weights.tensors.keys()]
      .filter((k) => parseAdapterKey(k).kind === "other")
      .sort();
  }

  /** One module's rank, alpha and factor shapes, from the header alone (no tensor data read). */
  moduleInfo(module: string): Omit<PeftLoraModuleTensors, "A" | "B"> {
    const entry = this.entry(module);
    return {
      module,
      rank: entry.rank,
      alpha: entry.alpha,
      aShape: [entry.a.shape[0]!, entry.a.shape[1]!],
      bShape: [entry.b.shape[0]!, entry.b.shape[1]!],
    };
  }

  private entry(module: string): ModuleEntry {
    const entry = this.byModule.get(module);
    if (entry === undefined) {
      throw new PeftAdapterError(
        `no LoRA module ${JSON.stringify(module)} in this adapter`,
        this.weights.path,
      );
    }
    return entry;
  }

  /** One module's factors decoded to Float32. */
  async readModule(module: string): Promise<PeftLoraModuleTensors> {
    const entry = this.entry(module);
    // Sequential reads: only this module's two tensors are in memory.
    const A = await this.weights.readF32(entry.a.name);
    const B = await this.weights.readF32(entry.b.name);
    return { ...this.moduleInfo(module), A, B };
  }

  async close(): Promise<void> {
    await this.weights.close();
  }
}

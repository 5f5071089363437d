import { copyFile, link, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { atomicTempName, writeFileAtomic } from "@merge/tensor-io";
import { ONNX_DATA_FILE } from "./build.js";
import { MistralOnnxError } from "./errors.js";
import { IO } from "./io.js";
import { inlineTensor, onnx, rawBytes } from "./onnx/proto.js";

/**
 * transformers.js (`@huggingface/transformers` v3) picks the graph file by its `dtype` option:
 * `onnx/model<suffix>.onnx`, with external data in `model<suffix>.onnx_data` beside it (its
 * DEFAULT_DTYPE_SUFFIX_MAPPING and getSession). These are the names for the builds we make:
 * fp32 and fp16 weights, optionally with MatMulNBits weight quantization. An int4 build is what
 * transformers.js calls q4 (fp32 activations) or q4f16; an 8-bit MatMulNBits build with fp32
 * activations goes under q8 (the only 8-bit name it has for fp32 activations).
 */
export const TRANSFORMERS_JS_DTYPE_SUFFIX = {
  fp32: "",
  fp16: "_fp16",
  q4: "_q4",
  q4f16: "_q4f16",
  q8: "_quantized",
} as const;
export type TransformersJsDtype = keyof typeof TRANSFORMERS_JS_DTYPE_SUFFIX;

/** The subfolder transformers.js reads graphs from (its `subfolder` option's default). */
export const TRANSFORMERS_JS_ONNX_DIR = "onnx";

const GENERATION_CONFIG = "generation_config.json";

/** Tokenizer and generation files copied when the model folder has them. */
const MODEL_FILES = [
  GENERATION_CONFIG,
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "chat_template.jinja",
] as const;

export interface ExportTransformersJsOptions {
  /** A model.onnx written by buildOnnxModel, its model.onnx.data beside it (left untouched). */
  onnxPath: string;
  /** The base model folder: config.json, generation_config.json and tokenizer files. */
  modelDir: string;
  /** Receives config.json, the tokenizer files and onnx/model<suffix>.onnx(+_data). */
  outDir: string;
}

export interface ExportTransformersJsResult {
  /** The `dtype` to pass to transformers.js (also written to config.json as its default). */
  dtype: TransformersJsDtype;
  onnxPath: string;
  dataPath: string;
}

/**
 * Writes a folder transformers.js loads with `from_pretrained(dir, { local_files_only: true })`
 * (model type from the base's config.json: MistralForCausalLM, LlamaForCausalLM). Only the small
 * graph protobuf is rewritten: its tensors' external-data location becomes transformers.js' file
 * name, and num_logits_to_keep, which transformers.js does not feed, becomes a constant 0 (all
 * positions), so the graph's inputs are exactly the ones it feeds. MistralRunner loads the
 * exported graph too. The weights file is hard-linked (copied across filesystems), never
 * rewritten. Every file is written atomically.
 */
export async function exportTransformersJs(
  options: ExportTransformersJsOptions,
): Promise<ExportTransformersJsResult> {
  const { onnxPath, modelDir, outDir } = options;
  let model: ReturnType<typeof onnx.ModelProto.decode>;
  try {
    model = onnx.ModelProto.decode(await readFile(onnxPath));
  } catch (e) {
    throw new MistralOnnxError(`${onnxPath}: cannot read ONNX model (${(e as Error).message})`, {
      file: onnxPath,
    });
  }
  const graph = model.graph;
  if (!graph) throw new MistralOnnxError(`${onnxPath}: no graph`, { file: onnxPath });
  const dtype = transformersJsDtypeOf(graph, onnxPath);
  const base = `model${TRANSFORMERS_JS_DTYPE_SUFFIX[dtype]}`;
  const onnxName = `${base}.onnx`;
  const dataName = `${onnxName}_data`;

  relocateExternalData(graph, onnxPath, dataName);
  constantLogitsToKeep(graph, onnxPath);

  const config = await readJsonObject(join(modelDir, "config.json"));
  const onnxDir = join(outDir, TRANSFORMERS_JS_ONNX_DIR);
  const outOnnx = join(onnxDir, onnxName);
  const outData = join(onnxDir, dataName);
  await mkdir(onnxDir, { recursive: true });
  // Weights first, then the graph that points at them, so a reader never finds a graph whose
  // data is missing.
  await linkOrCopyAtomic(join(dirname(onnxPath), ONNX_DATA_FILE), outData);
  await writeFileAtomic(outOnnx, onnx.ModelProto.encode(model).finish());
  for (const name of MODEL_FILES) {
    const from = join(modelDir, name);
    if (await exists(from)) await writeFileAtomic(join(outDir, name), await readFile(from));
  }
  if (!(await exists(join(modelDir, GENERATION_CONFIG)))) {
    await writeFileAtomic(
      join(outDir, GENERATION_CONFIG),
      `${JSON.stringify(generationConfigOf(config), null, 2)}\n`,
    );
  }
  await writeFileAtomic(
    join(outDir, "config.json"),
    `${JSON.stringify({ ...config, "transformers.js_config": transformersJsConfig(config, dtype) }, null, 2)}\n`,
  );
  return { dtype, onnxPath: outOnnx, dataPath: outData };
}

/**
 * config.json's "transformers.js_config": the default dtype (so `from_pretrained` needs none),
 * that the weights are in one external data file (fetched beside the graph; in browsers it must
 * be named), and the KV cache element type of half-precision builds (the empty first-step cache
 * it makes must match the graph's past_key_values inputs).
 */
function transformersJsConfig(
  config: Record<string, unknown>,
  dtype: TransformersJsDtype,
): Record<string, unknown> {
  const existing = config["transformers.js_config"];
  return {
    ...(existing && typeof existing === "object" ? existing : {}),
    dtype,
    use_external_data_format: true,
    ...(dtype === "fp16" || dtype === "q4f16" ? { kv_cache_dtype: { [dtype]: "float16" } } : {}),
  };
}

/**
 * A generation_config.json for a base that has none, as transformers derives one from the model
 * config (GenerationConfig.from_model_config): its special token ids.
 */
function generationConfigOf(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { _from_model_config: true };
  for (const key of ["bos_token_id", "eos_token_id", "pad_token_id"]) {
    if (config[key] !== undefined && config[key] !== null) out[key] = config[key];
  }
  return out;
}

/** Reads the build's dtype and weight quantization from the graph itself. */
function transformersJsDtypeOf(graph: GraphProto, onnxPath: string): TransformersJsDtype {
  const T = onnx.TensorProto.DataType;
  const embed = graph.initializer?.find((t) => t.name === "model.embed_tokens.weight");
  if (!embed) {
    throw new MistralOnnxError(
      `${onnxPath}: no model.embed_tokens.weight initializer (not a graph buildOnnxModel wrote)`,
      { file: onnxPath, tensor: "model.embed_tokens.weight" },
    );
  }
  const half = embed.dataType === T.FLOAT16;
  const bits = new Set(
    (graph.node ?? [])
      .filter((n) => n.opType === "MatMulNBits")
      .map((n) => Number(n.attribute?.find((a) => a.name === "bits")?.i ?? 4)),
  );
  if (bits.size === 0) return half ? "fp16" : "fp32";
  if (bits.size === 1 && bits.has(4)) return half ? "q4f16" : "q4";
  if (bits.size === 1 && bits.has(8) && !half) return "q8";
  throw new MistralOnnxError(
    `${onnxPath}: no transformers.js dtype for ${half ? "fp16" : "fp32"} weights with ${[...bits].join("+")}-bit MatMulNBits (it names fp32, fp16, q4, q4f16 and q8 = 8-bit with fp32 activations)`,
    { file: onnxPath },
  );
}

type GraphProto = NonNullable<ReturnType<typeof onnx.ModelProto.decode>["graph"]>;

/** Points every external tensor at `dataName`; all must be in the build's one data file. */
function relocateExternalData(graph: GraphProto, onnxPath: string, dataName: string): void {
  for (const t of graph.initializer ?? []) {
    if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const location = t.externalData?.find((e) => e.key === "location");
    if (!location || location.value !== ONNX_DATA_FILE) {
      throw new MistralOnnxError(
        `${onnxPath}: tensor ${t.name} has its data in ${JSON.stringify(location?.value)}, expected ${ONNX_DATA_FILE}`,
        { file: onnxPath, tensor: t.name ?? "" },
      );
    }
    location.value = dataName;
  }
}

/**
 * Turns the num_logits_to_keep input into a constant 0 (keep every position, what
 * transformers.js expects): an initializer of the same name, the input removed. transformers.js
 * feeds exactly session.inputNames and fails on a required input it does not know. Keeping it
 * declared as an input with the initializer as its default (IR ≥ 4) would hide it from
 * inputNames too, but onnxruntime-node then drops a value fed for it and warns on every load,
 * so it buys nothing; MistralRunner instead keeps the last rows itself when the graph returns
 * more than it asked for (forward.ts).
 */
function constantLogitsToKeep(graph: GraphProto, onnxPath: string): void {
  const name = IO.logitsToKeep;
  if (!graph.input?.some((i) => i.name === name)) {
    throw new MistralOnnxError(`${onnxPath}: no ${name} input (not a graph buildOnnxModel wrote)`, {
      file: onnxPath,
    });
  }
  graph.input = graph.input.filter((i) => i.name !== name);
  graph.initializer = [
    ...(graph.initializer ?? []).filter((t) => t.name !== name),
    inlineTensor(name, "int64", [], rawBytes([0], "int64")),
  ];
}

/** Hard-links `from` to `to` (copies where links cannot be made), through a temporary name. */
async function linkOrCopyAtomic(from: string, to: string): Promise<void> {
  if (!(await exists(from))) {
    throw new MistralOnnxError(`${from}: missing (the external data of the build)`, { file: from });
  }
  const temp = join(dirname(to), atomicTempName(basename(to)));
  try {
    try {
      await link(from, temp);
    } catch {
      await copyFile(from, temp);
    }
    await rename(temp, to);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new MistralOnnxError(`${file}: cannot read JSON (${(e as Error).message})`, { file });
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new MistralOnnxError(`${file}: expected a JSON object`, { file });
  }
  return value as Record<string, unknown>;
}

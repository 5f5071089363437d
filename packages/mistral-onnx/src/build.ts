import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { readMistralConfig } from "./config.js";
import type { DeltaSource } from "./deltas.js";
import { MistralOnnxError } from "./errors.js";
import { buildDecoderGraph, type ModelDtype, type WeightQuant } from "./graph.js";
import { type WeightEncoder, weightEncoder } from "./encode/encoder.js";
import {
  BUILD_THREADS_RULE,
  DEFAULT_DELTA_MODE,
  DEFAULT_DTYPE,
  DEFAULT_FUSED_OPS,
  DEFAULT_QUANT_BLOCK_SIZE,
  DEFAULT_WEIGHT_QUANT,
  DELTA_MODES,
  type DeltaMode,
  FUSED_OPS,
  type FusedOps,
  defaultBuildThreads,
  formatChoices,
  isOneOf,
  isValidBuildThreads,
  isValidQuantBlockSize,
  MODEL_DTYPES,
  QUANT_BLOCK_SIZE_RULE,
  WEIGHT_QUANTS,
} from "./options.js";
import { ExternalDataWriter } from "./onnx/external-data.js";
import { GraphBuilder } from "./onnx/graph-builder.js";
import { generationGraphPath } from "./generation-graph.js";
import { greedyLoopModelBytes } from "./onnx/greedy-loop.js";
import { WeightReader } from "./weights.js";

export interface BuildOnnxModelOptions {
  /** config.json + safetensors (+ tokenizer files). */
  modelDir: string;
  /** Receives model.onnx + model.onnx.data, and generate.onnx (the in-graph greedy loop over the same data file). */
  outDir: string;
  deltas?: DeltaSource;
  /** "fold" (default): W + ΔW. "side-branch": low-rank deltas as y += x·Aᵀ·Bᵀ (dense ones are folded). */
  deltaMode?: DeltaMode;
  dtype?: ModelDtype;
  /** Weight-only block-wise quantization (onnxruntime MatMulNBits) of every projection and lm_head. */
  weightQuant?: WeightQuant;
  /** Block size along the input dimension for weightQuant (default 128, as onnxruntime's own 4-bit quantizer; 32 is more accurate and slower). */
  quantBlockSize?: number;
  /** MatMulNBits accuracy_level: 4 = int8 activations (fastest on x86), 0 = float activations (default 4). */
  quantAccuracyLevel?: 0 | 1 | 2 | 3 | 4;
  /** Quantize lm_head too when weightQuant is on (default true). */
  quantizeLmHead?: boolean;
  /** "none" (default): standard ONNX ops; "contrib": onnxruntime's fused contrib ops (see FUSED_OPS). */
  fusedOps?: FusedOps;
  /**
   * Threads that transpose, convert and quantize the weights, each tensor split by rows
   * (default: os.availableParallelism()). 1 does it all on the calling thread. The output
   * bytes are the same for every value.
   */
  buildThreads?: number;
  onProgress?: (done: number, total: number, what: string) => void;
}

/**
 * Version of the graph and weight layout buildOnnxModel writes, for build cache keys: a cached
 * model.onnx is reusable only if it was built with the same format string. Bump it (date +
 * counter) whenever a change to this package alters the bytes written for the same inputs and
 * options: graph nodes or their order, initializer names, fusion, quantization packing,
 * external-data alignment, opset or IR version, or which modules take deltas.
 */
export const ONNX_BUILD_FORMAT = "mistral-onnx/2026-12-02.1";

export const ONNX_FILE = "model.onnx";
export const ONNX_DATA_FILE = "model.onnx.data";
const OPSET = 17;

/**
 * Builds the ONNX decoder for a Mistral/Llama checkpoint. Weights stream from safetensors to
 * model.onnx.data one (fused) module at a time; both files are written under temporary names
 * and renamed when complete.
 */
export async function buildOnnxModel(
  options: BuildOnnxModelOptions,
): Promise<{ onnxPath: string }> {
  const dtype = options.dtype ?? DEFAULT_DTYPE;
  if (!isOneOf(MODEL_DTYPES, dtype)) {
    throw new MistralOnnxError(
      `dtype must be ${formatChoices(MODEL_DTYPES)}, got ${JSON.stringify(dtype)}`,
      { field: "dtype" },
    );
  }
  const quant = options.weightQuant ?? DEFAULT_WEIGHT_QUANT;
  if (!isOneOf(WEIGHT_QUANTS, quant)) {
    throw new MistralOnnxError(
      `weightQuant must be ${formatChoices(WEIGHT_QUANTS)}, got ${JSON.stringify(quant)}`,
      { field: "weightQuant" },
    );
  }
  const blockSize = options.quantBlockSize ?? DEFAULT_QUANT_BLOCK_SIZE;
  if (!isValidQuantBlockSize(blockSize)) {
    throw new MistralOnnxError(
      `quantBlockSize must be ${QUANT_BLOCK_SIZE_RULE}, got ${blockSize}`,
      {
        field: "quantBlockSize",
      },
    );
  }
  const deltaMode = options.deltaMode ?? DEFAULT_DELTA_MODE;
  if (!isOneOf(DELTA_MODES, deltaMode)) {
    throw new MistralOnnxError(
      `deltaMode must be ${formatChoices(DELTA_MODES)}, got ${JSON.stringify(deltaMode)}`,
      { field: "deltaMode" },
    );
  }
  const fusedOps = options.fusedOps ?? DEFAULT_FUSED_OPS;
  if (!isOneOf(FUSED_OPS, fusedOps)) {
    throw new MistralOnnxError(
      `fusedOps must be ${formatChoices(FUSED_OPS)}, got ${JSON.stringify(fusedOps)}`,
      { field: "fusedOps" },
    );
  }
  const threads = options.buildThreads ?? defaultBuildThreads();
  if (!isValidBuildThreads(threads)) {
    throw new MistralOnnxError(`buildThreads must be ${BUILD_THREADS_RULE}, got ${threads}`, {
      field: "buildThreads",
    });
  }
  const config = await readMistralConfig(options.modelDir);
  const onnxPath = join(options.outDir, ONNX_FILE);
  const onnxTemp = `${onnxPath}.tmp-${process.pid}`;
  const genPath = generationGraphPath(onnxPath);
  const genTemp = `${genPath}.tmp-${process.pid}`;
  // Opened inside the try so a failing mkdir or data-file create still closes the checkpoint.
  let ckpt: SafetensorsCheckpoint | undefined;
  let data: ExternalDataWriter | undefined;
  let encoder: WeightEncoder | undefined;
  try {
    ckpt = await SafetensorsCheckpoint.open(options.modelDir);
    await mkdir(options.outDir, { recursive: true });
    data = await ExternalDataWriter.create(join(options.outDir, ONNX_DATA_FILE), ONNX_DATA_FILE);
    encoder = weightEncoder(threads);
    // One thread reads exactly as before; with workers, weights land in memory they share.
    const shared = threads > 1 ? encoder : undefined;
    const reader = new WeightReader(ckpt, options.modelDir, options.deltas, deltaMode, shared);
    const g = new GraphBuilder(data, encoder);
    await buildDecoderGraph(g, config, reader, {
      dtype,
      weightQuant: quant,
      quantBlockSize: blockSize,
      quantAccuracyLevel: options.quantAccuracyLevel ?? 4,
      quantizeLmHead: options.quantizeLmHead ?? true,
      fusedOps,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    // Both files are complete and on disk before either takes its real name, and the two
    // renames run back to back, so a crash leaves at worst an old pair or a new .data next
    // to an old .onnx for a moment, never a half-written file under a real name.
    const modelBytes = g.toModel(OPSET);
    await writeSynced(onnxTemp, modelBytes);
    // The in-graph greedy loop (generation-graph.ts): a small graph over the same data file,
    // so every build has it and the runner's generationGraph choice never needs a rebuild.
    await writeSynced(genTemp, greedyLoopModelBytes(modelBytes));
    await data.commit();
    await rename(onnxTemp, onnxPath);
    await rename(genTemp, genPath);
  } catch (e) {
    await data?.abort();
    await rm(onnxTemp, { force: true });
    await rm(genTemp, { force: true });
    throw e;
  } finally {
    await encoder?.close();
    await ckpt?.close();
  }
  return { onnxPath };
}

/** Writes a file and fsyncs it, so a later rename publishes complete contents. */
async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

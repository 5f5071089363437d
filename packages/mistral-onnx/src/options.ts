import { availableParallelism } from "node:os";

/**
 * The option values buildOnnxModel and MistralRunner accept, declared once: every check (here,
 * in apps/submit's config schema, in docs) uses these lists instead of retyping them.
 */

/** Element type of the built model's weights and activations. */
export const MODEL_DTYPES = ["fp32", "fp16"] as const;
export type ModelDtype = (typeof MODEL_DTYPES)[number];
export const DEFAULT_DTYPE: ModelDtype = "fp32";

/** Weight-only block-wise quantization (onnxruntime MatMulNBits) of projections and lm_head. */
export const WEIGHT_QUANTS = ["none", "int8", "int4"] as const;
export type WeightQuant = (typeof WEIGHT_QUANTS)[number];
export const DEFAULT_WEIGHT_QUANT: WeightQuant = "none";

/**
 * Which ops the decoder graph uses. "none": standard ONNX ops only (opset 17, every provider).
 * "contrib": onnxruntime's com.microsoft ops where they are exact for this graph's IO
 * (left-padded batches, KV cache, sliding window): SimplifiedLayerNormalization /
 * SkipSimplifiedLayerNormalization for the RMSNorms and residual adds, RotaryEmbedding, and
 * GroupQueryAttention with the graph's own attention bias (see graph/attention.ts).
 */
export const FUSED_OPS = ["none", "contrib"] as const;
export type FusedOps = (typeof FUSED_OPS)[number];
export const DEFAULT_FUSED_OPS: FusedOps = "none";

/** "fold": W + ΔW. "side-branch": low-rank deltas as y += x·Aᵀ·Bᵀ (dense ones are folded). */
export const DELTA_MODES = ["fold", "side-branch"] as const;
export type DeltaMode = (typeof DELTA_MODES)[number];
export const DEFAULT_DELTA_MODE: DeltaMode = "fold";

/**
 * onnxruntime execution providers the runner can ask for; "cuda" and "webgpu" (experimental in
 * onnxruntime-node, bundled on Linux x64, Windows and macOS) fall back to "cpu" with a warning.
 */
export const EXECUTION_PROVIDERS = ["cpu", "cuda", "webgpu"] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];
export const DEFAULT_EXECUTION_PROVIDER: ExecutionProvider = "cpu";

/**
 * Where greedy generation's decode loop runs. "none": on the host, one session.run per token
 * (the KV cache crosses host↔device every step under CUDA). "loop": inside generate.onnx, an
 * ONNX Loop over decoder steps (onnx/greedy-loop.ts), one session.run per batch, the cache
 * staying in onnxruntime. Same tokens either way (test/greedy-loop.test.ts).
 */
export const GENERATION_GRAPHS = ["none", "loop"] as const;
export type GenerationGraph = (typeof GENERATION_GRAPHS)[number];
export const DEFAULT_GENERATION_GRAPH: GenerationGraph = "none";

/** How a choice is tokenized for scoring (see `ChoiceTokenization`). */
export const CHOICE_TOKENIZATIONS = ["separate", "joined"] as const;
export type ChoiceTokenization = (typeof CHOICE_TOKENIZATIONS)[number];
export const DEFAULT_CHOICE_TOKENIZATION: ChoiceTokenization = "separate";

/**
 * How scoreContinuations runs a row's choices through the model.
 * - "shared-cache" (default): the prompt once, then one batch-1 forward per multi-token choice on
 *   the prompt's KV cache (1 + choices forwards; the least compute, best on the CPU for long
 *   prompts).
 * - "batched": all choices of a row as one left-padded batch of full sequences (prompt ids ++
 *   choice ids), no cache, only the last (longest choice + 1) positions' logits kept: one
 *   forward per row, so one read of the weights and no KV cache crossing host↔device (the
 *   onnxruntime-node CUDA case), at the cost of recomputing the prompt once per choice.
 * Same scores either way (test/choice-scoring.test.ts).
 */
export const CHOICE_SCORINGS = ["shared-cache", "batched"] as const;
export type ChoiceScoring = (typeof CHOICE_SCORINGS)[number];
export const DEFAULT_CHOICE_SCORING: ChoiceScoring = "shared-cache";

/** Block size along the input dimension for weightQuant: a power of two ≥ MIN_QUANT_BLOCK_SIZE. */
export const DEFAULT_QUANT_BLOCK_SIZE = 128;
export const MIN_QUANT_BLOCK_SIZE = 16;
export const QUANT_BLOCK_SIZE_RULE = `a power of two ≥ ${MIN_QUANT_BLOCK_SIZE}`;

/**
 * Threads a build uses to transpose, convert and quantize weights (buildOnnxModel's
 * buildThreads): one per core the process may use. 1 runs everything on the calling thread.
 */
export function defaultBuildThreads(): number {
  return availableParallelism();
}
export const BUILD_THREADS_RULE = "an integer ≥ 1";

/** Whether `n` is a valid buildThreads (BUILD_THREADS_RULE). */
export function isValidBuildThreads(n: number): boolean {
  return Number.isInteger(n) && n >= 1;
}

/** Whether `n` is a valid quantBlockSize (QUANT_BLOCK_SIZE_RULE). */
export function isValidQuantBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_QUANT_BLOCK_SIZE && (n & (n - 1)) === 0;
}

/** Whether `value` is one of `options` (narrows its type). */
export function isOneOf<T extends string>(options: readonly T[], value: unknown): value is T {
  return typeof value === "string" && (options as readonly string[]).includes(value);
}

/** `"a", "b" or "c"` for error messages. */
export function formatChoices(options: readonly string[]): string {
  const q = options.map((o) => JSON.stringify(o));
  return q.length <= 1 ? q.join("") : `${q.slice(0, -1).join(", ")} or ${q.at(-1)}`;
}

export {
  type BuildOnnxModelOptions,
  buildOnnxModel,
  ONNX_BUILD_FORMAT,
  ONNX_DATA_FILE,
  ONNX_FILE,
} from "./build.js";
export {
  type Architecture,
  type MistralConfig,
  parseMistralConfig,
  readMistralConfig,
} from "./config.js";
export {
  checkDelta,
  DELTA_PROJECTIONS,
  type DeltaSource,
  foldDelta,
  isDeltaTarget,
  type RoutedExpertDelta,
  type RouterSpec,
  type WeightDelta,
} from "./deltas.js";
export { MistralOnnxError, type Where } from "./errors.js";
export {
  cutAtStop,
  type GenerateIdsOptions,
  type GreedyLoopFn,
  StopStringMatcher,
  TextStreamer,
} from "./generate.js";
export {
  buildGenerationGraph,
  GENERATION_ONNX_FILE,
  generationGraphPath,
} from "./generation-graph.js";
export { GEN_IO } from "./onnx/greedy-loop.js";
export { IO, type ModelDtype, type WeightQuant } from "./graph.js";
export {
  BUILD_THREADS_RULE,
  CHOICE_SCORINGS,
  CHOICE_TOKENIZATIONS,
  type ChoiceScoring,
  DEFAULT_CHOICE_SCORING,
  DEFAULT_CHOICE_TOKENIZATION,
  DEFAULT_DELTA_MODE,
  DEFAULT_DTYPE,
  DEFAULT_EXECUTION_PROVIDER,
  DEFAULT_FUSED_OPS,
  DEFAULT_GENERATION_GRAPH,
  DEFAULT_QUANT_BLOCK_SIZE,
  DEFAULT_WEIGHT_QUANT,
  DELTA_MODES,
  type DeltaMode,
  defaultBuildThreads,
  EXECUTION_PROVIDERS,
  formatChoices,
  FUSED_OPS,
  type FusedOps,
  GENERATION_GRAPHS,
  type GenerationGraph,
  isOneOf,
  isValidBuildThreads,
  isValidQuantBlockSize,
  MIN_QUANT_BLOCK_SIZE,
  MODEL_DTYPES,
  QUANT_BLOCK_SIZE_RULE,
  WEIGHT_QUANTS,
} from "./options.js";
export { dequantizeBlockwise, type QuantizedWeight, quantizeBlockwise } from "./quantize.js";
export type { KvCache } from "./kv-cache.js";
export {
  type ContinuationScore,
  type ExecutionProvider,
  type ForwardResult,
  type ForwardStep,
  type GenerateOptions,
  leftPad,
  MistralRunner,
  type MistralRunnerOptions,
} from "./runner.js";
export {
  type ChoiceTokenization,
  continuationTokens,
  separateContinuationTokens,
} from "./scoring.js";
export { Tokenizer } from "./tokenizer.js";
export {
  type ExportTransformersJsOptions,
  type ExportTransformersJsResult,
  exportTransformersJs,
  TRANSFORMERS_JS_DTYPE_SUFFIX,
  TRANSFORMERS_JS_ONNX_DIR,
  type TransformersJsDtype,
} from "./transformers-js.js";

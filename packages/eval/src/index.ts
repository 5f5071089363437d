export {
  ChoiceLiteralError,
  formatChoiceLiteral,
  parseChoiceLiteral,
  pythonStrRepr,
} from "./choice-literal.js";
export {
  type CompetitionDataset,
  type CompetitionRow,
  type BadRow,
  type DatasetEntry,
  EVAL_TYPES,
  type EvalType,
  REQUIRED_COLUMNS,
  type ReadCsvOptions,
  parseCompetitionCsv,
  readCompetitionCsv,
} from "./csv-read.js";
export { CsvValidationError, type RowIssue, type Where, formatRowIssue } from "./errors.js";
export {
  type ChoiceScorer,
  DEFAULT_FALLBACKS,
  type EvaluateOptions,
  type EvaluationResult,
  type FallbackPredictions,
  type PredictionDetail,
  type PredictionSource,
  type RowError,
  type TextGenerator,
  argmaxChoice,
  evaluateDataset,
} from "./evaluate.js";
export {
  type MetricsReport,
  type TaskMetrics,
  computeTaskMetrics,
  exactMatch,
  metricsMarkdown,
  normalizeAnswer,
} from "./metrics.js";
export {
  type Prediction,
  PredictionsError,
  formatPredictionsCsv,
  writeFileAtomic,
  writePredictionsCsv,
} from "./predictions-write.js";
export { type ProgressSink, silentProgress, terminalProgress } from "./progress.js";
export {
  type RougeScore,
  type RougeScores,
  lcsLength,
  rougeLTokens,
  rougeNTokens,
  rougeScores,
  rougeTokenize,
} from "./rouge.js";
export {
  CHOICE_SCORES,
  type ChoiceScore,
  DEFAULT_CHOICE_SCORE,
  DEFAULT_GENERATION_BATCH_SIZE,
  DEFAULT_MAX_NEW_TOKENS,
  DEFAULT_ROW_ERROR_MODE,
  ROW_ERROR_MODES,
  type RowErrorMode,
} from "./options.js";

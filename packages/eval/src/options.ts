/**
 * The option values evaluateDataset accepts, declared once: apps/submit's config schema and the
 * checks here use these instead of retyping them.
 */

/** Rank choices by the summed log-probability of their tokens, or by its per-token mean. */
export const CHOICE_SCORES = ["sum", "mean"] as const;
export type ChoiceScore = (typeof CHOICE_SCORES)[number];
export const DEFAULT_CHOICE_SCORE: ChoiceScore = "sum";

/** What happens when the scorer or generator throws on a row. */
export const ROW_ERROR_MODES = ["fail", "fallback"] as const;
export type RowErrorMode = (typeof ROW_ERROR_MODES)[number];
export const DEFAULT_ROW_ERROR_MODE: RowErrorMode = "fail";

/** New tokens per generation row. */
export const DEFAULT_MAX_NEW_TOKENS = 64;
/** Generation rows per generate() call. */
export const DEFAULT_GENERATION_BATCH_SIZE = 8;

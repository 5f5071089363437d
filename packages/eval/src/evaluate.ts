import type { CompetitionRow, DatasetEntry, EvalType } from "./csv-read.js";
import type { Prediction } from "./predictions-write.js";
import { type ProgressSink, silentProgress, terminalProgress } from "./progress.js";
import {
  CHOICE_SCORES,
  type ChoiceScore,
  DEFAULT_CHOICE_SCORE,
  DEFAULT_GENERATION_BATCH_SIZE,
  DEFAULT_MAX_NEW_TOKENS,
  DEFAULT_ROW_ERROR_MODE,
  ROW_ERROR_MODES,
  type RowErrorMode,
} from "./options.js";

/** Scores answer choices as continuations of a prompt (implemented by the ONNX runner). */
export interface ChoiceScorer {
  scoreContinuations(
    prompt: string,
    choices: string[],
  ): Promise<Array<{ sum: number; mean: number; tokens: number }>>;
}

/** Greedy text generation (implemented by the ONNX runner). */
export interface TextGenerator {
  generate(
    prompts: string[],
    options?: { maxNewTokens?: number; stop?: string[]; batchSize?: number },
  ): Promise<string[]>;
}

/** Predictions used where the model gives none (budget cut, bad row, empty generation). */
export interface FallbackPredictions {
  multipleChoice: string;
  generation: string;
}

export const DEFAULT_FALLBACKS: FallbackPredictions = {
  multipleChoice: "0",
  generation: "unknown",
};

export interface EvaluateOptions {
  scorer: ChoiceScorer;
  generator: TextGenerator;
  /** Rank choices by the summed log-probability of all their tokens (default) or its per-token mean. */
  choiceScore?: ChoiceScore;
  /** New tokens per generation row (default 64). */
  maxNewTokens?: number;
  /** Generation rows per generate() call (default 8). */
  generationBatchSize?: number;
  /** Stop strings passed to the generator. */
  stop?: string[];
  /**
   * Time budget: a wall-clock deadline in ms on the `now` clock. Before each unit of work the
   * loop estimates its cost from the units done so far and stops when it would end past the
   * deadline; every row not answered then gets a fallback prediction.
   */
  deadline?: number;
  /** Clock in ms (default Date.now); injectable for tests. */
  now?: () => number;
  /** true/false, or a sink; default: a terminal bar only when stderr is a TTY. */
  progress?: boolean | ProgressSink;
  fallbacks?: FallbackPredictions;
  /**
   * When the scorer or generator throws: "fail" (default) rethrows; "fallback" records the
   * error and answers the row(s) with the fallback, so a long run still yields a full CSV.
   */
  onRowError?: RowErrorMode;
}

/** How a prediction came about. */
export type PredictionSource =
  | "model"
  | "budget-fallback"
  | "placeholder"
  | "empty-fallback"
  | "error-fallback";

/** A row the model failed on (scorer/generator threw) under onRowError "fallback". */
export interface RowError {
  id: string;
  row: number;
  message: string;
}

export interface PredictionDetail extends Prediction {
  source: PredictionSource;
  evalType?: EvalType;
  /** For multiple choice: the score of each choice (sum or mean, as ranked). */
  choiceScores?: number[];
}

export interface EvaluationResult {
  /** One per dataset entry, in input order. */
  predictions: PredictionDetail[];
  /** Rows answered with a fallback because the time budget ran out. */
  cutByBudget: number;
  /** Bad rows answered with a placeholder (skip-bad-rows policy). */
  placeholders: number;
  /** Generation rows whose generated text was empty, answered with the fallback. */
  emptyGenerations: number;
  /** Rows the model failed on, answered with fallbacks (onRowError "fallback"). */
  rowErrors: RowError[];
  elapsedMs: number;
}

/** Index of the best score; ties go to the lowest index, NaN never wins. */
export function argmaxChoice(scores: readonly number[]): number {
  let best = 0;
  let bestScore = Number.NEGATIVE_INFINITY;
  scores.forEach((s, i) => {
    const v = Number.isNaN(s) ? Number.NEGATIVE_INFINITY : s;
    if (v > bestScore) {
      best = i;
      bestScore = v;
    }
  });
  return best;
}

function fallbackFor(evalType: EvalType | undefined, f: FallbackPredictions): string {
  return evalType === "multiple_choice" ? f.multipleChoice : f.generation;
}

function resolveProgress(p: EvaluateOptions["progress"]): ProgressSink {
  if (p === false) return silentProgress;
  if (p === undefined || p === true) return terminalProgress();
  return p;
}

/** Running mean cost of one unit of work of one kind, for the budget check. */
class CostEstimate {
  private totalMs = 0;
  private units = 0;
  add(ms: number, units: number): void {
    this.totalMs += ms;
    this.units += units;
  }
  /** Unknown until one unit is measured: the first unit of each kind is always tried. */
  estimate(units: number): number {
    return this.units === 0 ? 0 : (this.totalMs / this.units) * units;
  }
}

/**
 * Answers every entry: multiple-choice rows by scoring each choice, generation rows by greedy
 * generation in batches. Multiple-choice rows run first (they are cheap), then generation rows
 * shortest-prompt first (similar lengths batch with little padding, and more rows fit a budget).
 * The result is in input order whatever the processing order.
 */
export async function evaluateDataset(
  entries: readonly DatasetEntry[],
  options: EvaluateOptions,
): Promise<EvaluationResult> {
  const now = options.now ?? Date.now;
  const fallbacks = options.fallbacks ?? DEFAULT_FALLBACKS;
  const batchSize = Math.max(1, options.generationBatchSize ?? DEFAULT_GENERATION_BATCH_SIZE);
  const maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const choiceScore = options.choiceScore ?? DEFAULT_CHOICE_SCORE;
  if (!(CHOICE_SCORES as readonly string[]).includes(choiceScore)) {
    throw new Error(
      `choiceScore must be one of ${CHOICE_SCORES.join(", ")}, got ${JSON.stringify(choiceScore)}`,
    );
  }
  const rowErrorMode = options.onRowError ?? DEFAULT_ROW_ERROR_MODE;
  if (!(ROW_ERROR_MODES as readonly string[]).includes(rowErrorMode)) {
    throw new Error(
      `onRowError must be one of ${ROW_ERROR_MODES.join(", ")}, got ${JSON.stringify(rowErrorMode)}`,
    );
  }
  const progress = resolveProgress(options.progress);
  const started = now();

  const out: Array<PredictionDetail | undefined> = new Array(entries.length);
  const mc: Array<{ index: number; row: CompetitionRow }> = [];
  const gen: Array<{ index: number; row: CompetitionRow }> = [];
  let placeholders = 0;
  entries.forEach((e, index) => {
    if (e.kind === "bad") {
      placeholders++;
      out[index] = {
        id: e.row.id,
        prediction: fallbackFor(e.row.evalType, fallbacks),
        source: "placeholder",
        ...(e.row.evalType ? { evalType: e.row.evalType } : {}),
      };
    } else if (e.row.evalType === "multiple_choice") mc.push({ index, row: e.row });
    else gen.push({ index, row: e.row });
  });
  gen.sort((a, b) => a.row.input.length - b.row.input.length || a.index - b.index);

  const total = mc.length + gen.length;
  let done = 0;
  let outOfTime = false;
  const rowErrors: RowError[] = [];
  const fits = (cost: CostEstimate, units: number) => {
    if (options.deadline === undefined) return true;
    const t = now();
    return t < options.deadline && t + cost.estimate(units) <= options.deadline;
  };
  const failed = (error: unknown, rows: CompetitionRow[]) => {
    if (rowErrorMode !== "fallback") throw error;
    const message = error instanceof Error ? error.message : String(error);
    for (const row of rows) rowErrors.push({ id: row.id, row: row.row, message });
  };

  progress.start(total, "multiple choice");
  try {
    const mcCost = new CostEstimate();
    for (const { index, row } of mc) {
      if (!fits(mcCost, 1)) {
        outOfTime = true;
        break;
      }
      const t0 = now();
      try {
        const scored = await options.scorer.scoreContinuations(row.input, row.choices);
        if (scored.length !== row.choices.length) {
          throw new Error(
            `scorer returned ${scored.length} scores for ${row.choices.length} choices (row ${row.row}, id ${JSON.stringify(row.id)})`,
          );
        }
        const choiceScores = scored.map((s) => (choiceScore === "mean" ? s.mean : s.sum));
        out[index] = {
          id: row.id,
          prediction: String(argmaxChoice(choiceScores)),
          source: "model",
          evalType: "multiple_choice",
          choiceScores,
        };
      } catch (err) {
        failed(err, [row]);
        out[index] = {
          id: row.id,
          prediction: fallbacks.multipleChoice,
          source: "error-fallback",
          evalType: "multiple_choice",
        };
      }
      mcCost.add(now() - t0, 1);
      progress.update(++done, "multiple choice");
    }

    const genCost = new CostEstimate();
    for (let start = 0; start < gen.length && !outOfTime; start += batchSize) {
      const batch = gen.slice(start, start + batchSize);
      if (!fits(genCost, batch.length)) {
        outOfTime = true;
        break;
      }
      const t0 = now();
      let texts: Array<string | undefined>;
      try {
        texts = await options.generator.generate(
          batch.map((b) => b.row.input),
          // The batch is already cut to size; passing it on keeps the runner from re-splitting
          // it into its own default batches.
          { maxNewTokens, batchSize, ...(options.stop ? { stop: options.stop } : {}) },
        );
        if (texts.length !== batch.length) {
          throw new Error(`generator returned ${texts.length} texts for ${batch.length} prompts`);
        }
      } catch (err) {
        failed(
          err,
          batch.map((b) => b.row),
        );
        texts = batch.map(() => undefined);
      }
      genCost.add(now() - t0, batch.length);
      batch.forEach(({ index, row }, k) => {
        const text = texts[k];
        const source: PredictionSource =
          text === undefined ? "error-fallback" : text.trim() === "" ? "empty-fallback" : "model";
        out[index] = {
          id: row.id,
          prediction: source === "model" ? text! : fallbacks.generation,
          source,
          evalType: "generation",
        };
      });
      done += batch.length;
      progress.update(done, "generation");
    }
  } finally {
    progress.stop();
  }

  let cutByBudget = 0;
  let emptyGenerations = 0;
  const predictions = entries.map((e, index) => {
    const p = out[index];
    if (p !== undefined) {
      if (p.source === "empty-fallback") emptyGenerations++;
      return p;
    }
    // Only rows skipped because the budget ran out are left unanswered here.
    cutByBudget++;
    const evalType = e.row.evalType;
    return {
      id: e.row.id,
      prediction: fallbackFor(evalType, fallbacks),
      source: "budget-fallback" as const,
      ...(evalType ? { evalType } : {}),
    };
  });
  return {
    predictions,
    cutByBudget,
    placeholders,
    emptyGenerations,
    rowErrors,
    elapsedMs: now() - started,
  };
}

import type { CompetitionRow } from "./csv-read.js";
import type { Prediction } from "./predictions-write.js";
import { rougeScores } from "./rouge.js";

/**
 * SQuAD/TriviaQA answer normalisation (as in the competition kit's metrics): lowercase,
 * underscores and punctuation to spaces, drop articles, collapse whitespace.
 */
export function normalizeAnswer(text: string): string {
  return (
    text
      .replace(/_/g, " ")
      .toLowerCase()
      .replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~‘’´]/g, " ")
      // Python's \b is Unicode-aware; JS's is ASCII-only, hence explicit lookarounds.
      .replace(/(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu, " ")
      .split(/\s+/)
      .filter((t) => t !== "")
      .join(" ")
  );
}

export function exactMatch(prediction: string, target: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(target);
}

/** Metrics of one labelled file (one task). Means over the rows of the kind they apply to. */
export interface TaskMetrics {
  task: string;
  rows: number;
  multipleChoiceRows: number;
  generationRows: number;
  /** Multiple-choice rows whose predicted index equals the target index. */
  accuracy: number | null;
  /** Generation rows equal to the target after normalizeAnswer. */
  exactMatch: number | null;
  /** Mean ROUGE F-measures over generation rows (rouge_score semantics, no stemming). */
  rouge1: number | null;
  rouge2: number | null;
  rougeL: number | null;
}

/**
 * Scores predictions against the rows' `target`. Rows without a target are not counted.
 * @throws when a labelled row has no prediction.
 */
export function computeTaskMetrics(
  task: string,
  rows: readonly CompetitionRow[],
  predictions: readonly Prediction[],
): TaskMetrics {
  const byId = new Map(predictions.map((p) => [p.id, p.prediction]));
  let mc = 0;
  let correct = 0;
  let gen = 0;
  let em = 0;
  let r1 = 0;
  let r2 = 0;
  let rl = 0;
  for (const row of rows) {
    if (row.target === undefined || row.target.trim() === "") continue;
    const prediction = byId.get(row.id);
    if (prediction === undefined) {
      throw new Error(`${task}: no prediction for labelled row ${row.row} (id ${row.id})`);
    }
    if (row.evalType === "multiple_choice") {
      mc++;
      if (prediction.trim() === row.target.trim()) correct++;
    } else {
      gen++;
      if (exactMatch(prediction, row.target)) em++;
      const s = rougeScores(row.target, prediction);
      r1 += s.rouge1.fmeasure;
      r2 += s.rouge2.fmeasure;
      rl += s.rougeL.fmeasure;
    }
  }
  const mean = (x: number, n: number) => (n === 0 ? null : x / n);
  return {
    task,
    rows: mc + gen,
    multipleChoiceRows: mc,
    generationRows: gen,
    accuracy: mean(correct, mc),
    exactMatch: mean(em, gen),
    rouge1: mean(r1, gen),
    rouge2: mean(r2, gen),
    rougeL: mean(rl, gen),
  };
}

export interface MetricsReport {
  tasks: TaskMetrics[];
}

function cell(x: number | null): string {
  return x === null ? "–" : x.toFixed(4);
}

/** A Markdown table with one line per task. */
export function metricsMarkdown(report: MetricsReport): string {
  const head = "| task | rows | accuracy | exact match | ROUGE-1 | ROUGE-2 | ROUGE-L |";
  const rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |";
  const lines = report.tasks.map(
    (t) =>
      `| ${t.task} | ${t.rows} | ${cell(t.accuracy)} | ${cell(t.exactMatch)} | ${cell(t.rouge1)} | ${cell(t.rouge2)} | ${cell(t.rougeL)} |`,
  );
  return `${[head, rule, ...lines].join("\n")}\n`;
}

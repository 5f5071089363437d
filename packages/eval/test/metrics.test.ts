import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type CompetitionRow,
  computeTaskMetrics,
  lcsLength,
  metricsMarkdown,
  normalizeAnswer,
  rougeScores,
} from "../src/index.js";

// Written by tools/fixtures/eval/make_rouge_fixtures.py with Google's rouge_score.
type S = { precision: number; recall: number; fmeasure: number };
const { cases } = JSON.parse(
  readFileSync(new URL("./fixtures/rouge.json", import.meta.url), "utf8"),
) as {
  cases: Array<{
    target: string;
    prediction: string;
    rouge1: S;
    rouge2: S;
    rougeL: S;
    normalizedTarget: string;
    normalizedPrediction: string;
  }>;
};

function close(actual: S, expected: S, what: string) {
  expect(actual.precision, what).toBeCloseTo(expected.precision, 12);
  expect(actual.recall, what).toBeCloseTo(expected.recall, 12);
  expect(actual.fmeasure, what).toBeCloseTo(expected.fmeasure, 12);
}

describe("ROUGE vs rouge_score", () => {
  it(`matches rouge1/rouge2/rougeL on ${cases.length} fixture pairs`, () => {
    for (const c of cases) {
      const s = rougeScores(c.target, c.prediction);
      const what = JSON.stringify([c.target, c.prediction]);
      close(s.rouge1, c.rouge1, `rouge1 ${what}`);
      close(s.rouge2, c.rouge2, `rouge2 ${what}`);
      close(s.rougeL, c.rougeL, `rougeL ${what}`);
    }
  });

  it("LCS is symmetric and bounded by the shorter length (property)", () => {
    let seed = 99;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed;
    };
    for (let k = 0; k < 200; k++) {
      const a = Array.from({ length: rnd() % 12 }, () => "abc"[rnd() % 3]!);
      const b = Array.from({ length: rnd() % 12 }, () => "abc"[rnd() % 3]!);
      const l = lcsLength(a, b);
      expect(l).toBe(lcsLength(b, a));
      expect(l).toBeLessThanOrEqual(Math.min(a.length, b.length));
      expect(lcsLength(a, a)).toBe(a.length);
    }
  });
});

describe("exact match normalisation vs the competition kit", () => {
  it("normalizeAnswer matches the kit's Python normalize_answer", () => {
    for (const c of cases) {
      expect(normalizeAnswer(c.target), c.target).toBe(c.normalizedTarget);
      expect(normalizeAnswer(c.prediction), c.prediction).toBe(c.normalizedPrediction);
    }
  });
});

describe("computeTaskMetrics", () => {
  const row = (
    id: string,
    evalType: CompetitionRow["evalType"],
    target: string,
  ): CompetitionRow => ({
    id,
    input: "q",
    evalType,
    choices: evalType === "multiple_choice" ? ["a", "b", "c"] : [],
    target,
    row: Number(id) + 1,
    line: Number(id) + 2,
  });

  it("accuracy over multiple choice, EM and ROUGE means over generation", () => {
    const rows = [
      row("0", "multiple_choice", "1"),
      row("1", "multiple_choice", "2"),
      row("2", "generation", "The cat sat."),
      row("3", "generation", "a dog ran"),
    ];
    const preds = [
      { id: "0", prediction: "1" },
      { id: "1", prediction: "0" },
      { id: "2", prediction: "the cat sat" },
      { id: "3", prediction: "dog" },
    ];
    const m = computeTaskMetrics("mixed", rows, preds);
    expect(m.accuracy).toBe(0.5);
    expect(m.exactMatch).toBe(0.5);
    const r3 = rougeScores("a dog ran", "dog");
    expect(m.rouge1).toBeCloseTo((1 + r3.rouge1.fmeasure) / 2, 12);
    expect(m.rougeL).toBeCloseTo((1 + r3.rougeL.fmeasure) / 2, 12);
    expect(m.rows).toBe(4);
    const md = metricsMarkdown({ tasks: [m, computeTaskMetrics("mc", rows.slice(0, 2), preds)] });
    expect(md.split("\n")[0]).toBe(
      "| task | rows | accuracy | exact match | ROUGE-1 | ROUGE-2 | ROUGE-L |",
    );
    expect(md).toContain("| mc | 2 | 0.5000 | – | – | – | – |");
  });

  it("throws when a labelled row has no prediction", () => {
    expect(() => computeTaskMetrics("t", [row("0", "generation", "x")], [])).toThrow(
      /no prediction for labelled row 1/,
    );
  });
});

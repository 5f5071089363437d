import { describe, expect, it } from "vitest";
import {
  type ChoiceScorer,
  type DatasetEntry,
  type ProgressSink,
  type TextGenerator,
  argmaxChoice,
  evaluateDataset,
  parseCompetitionCsv,
} from "../src/index.js";

const CSV = `id,input,eval_type,answer_choices
g-long,"a much longer generation prompt",generation,
m1,pick,multiple_choice,"['short', 'a longer choice', 'mid']"
g1,hi,generation,
m2,pick,multiple_choice,"['x', 'yy']"
g2,hello,generation,
`;

const entries = (text = CSV): DatasetEntry[] =>
  parseCompetitionCsv(text, "t.csv", { skipBadRows: true, onWarning: () => {} }).entries;

/** Scores: sum = -(choice length), mean = sum / tokens with tokens = number of words. */
const scorer: ChoiceScorer = {
  async scoreContinuations(_prompt, choices) {
    return choices.map((c) => {
      const tokens = c.split(" ").length;
      return { sum: -c.length, mean: -c.length / tokens ** 2, tokens };
    });
  },
};

function recordingGenerator(answer = (p: string) => `echo ${p}`) {
  const calls: Array<{ prompts: string[]; maxNewTokens?: number; batchSize?: number }> = [];
  const generator: TextGenerator = {
    async generate(prompts, options) {
      calls.push({
        prompts,
        ...(options?.maxNewTokens ? { maxNewTokens: options.maxNewTokens } : {}),
        ...(options?.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      });
      return prompts.map(answer);
    },
  };
  return { generator, calls };
}

describe("argmaxChoice", () => {
  it("takes the highest score, the first on ties, and never NaN", () => {
    expect(argmaxChoice([-3, -1, -2])).toBe(1);
    expect(argmaxChoice([-1, -1])).toBe(0);
    expect(argmaxChoice([Number.NaN, -5])).toBe(1);
  });
});

describe("evaluateDataset", () => {
  it("answers every row in input order: choice index or generated text", async () => {
    const { generator, calls } = recordingGenerator();
    const r = await evaluateDataset(entries(), { scorer, generator, progress: false });
    expect(r.predictions.map((p) => [p.id, p.prediction, p.source])).toEqual([
      ["g-long", "echo a much longer generation prompt", "model"],
      ["m1", "2", "model"], // sums -5, -15, -3
      ["g1", "echo hi", "model"],
      ["m2", "0", "model"],
      ["g2", "echo hello", "model"],
    ]);
    expect(r.cutByBudget).toBe(0);
    // Default 64 new tokens and batches of 8; generation batched shortest prompt first.
    expect(calls).toEqual([
      {
        prompts: ["hi", "hello", "a much longer generation prompt"],
        maxNewTokens: 64,
        batchSize: 8,
      },
    ]);
  });

  it("ranks by per-token mean when asked", async () => {
    const { generator } = recordingGenerator();
    const r = await evaluateDataset(entries(), {
      scorer,
      generator,
      choiceScore: "mean",
      progress: false,
    });
    // m1: means -5/1, -15/9, -3/1 → index 1.
    expect(r.predictions.find((p) => p.id === "m1")!.prediction).toBe("1");
    expect(r.predictions.find((p) => p.id === "m1")!.choiceScores).toEqual([-5, -15 / 9, -3]);
  });

  it("batches generation and passes maxNewTokens", async () => {
    const { generator, calls } = recordingGenerator();
    await evaluateDataset(entries(), {
      scorer,
      generator,
      generationBatchSize: 2,
      maxNewTokens: 5,
      progress: false,
    });
    expect(calls.map((c) => c.prompts.length)).toEqual([2, 1]);
    expect(calls.every((c) => c.maxNewTokens === 5)).toBe(true);
  });

  it("passes generationBatchSize on as the generator's batchSize (even above 8)", async () => {
    const many = Array.from({ length: 20 }, (_, i) => `g${i},prompt ${i},generation,`).join("\n");
    const { generator, calls } = recordingGenerator();
    await evaluateDataset(entries(`id,input,eval_type,answer_choices\n${many}\n`), {
      scorer,
      generator,
      generationBatchSize: 16,
      progress: false,
    });
    expect(calls.map((c) => c.prompts.length)).toEqual([16, 4]);
    expect(calls.map((c) => c.batchSize)).toEqual([16, 16]);
  });

  it("replaces empty generations and answers bad rows with placeholders", async () => {
    const text = `${CSV}bad,q,multiple_choice,"['only']"\n`;
    const { generator } = recordingGenerator((p) => (p === "hi" ? "  \n" : "text"));
    const r = await evaluateDataset(entries(text), {
      scorer,
      generator,
      progress: false,
      fallbacks: { multipleChoice: "0", generation: "FALLBACK" },
    });
    expect(r.predictions.find((p) => p.id === "g1")).toMatchObject({
      prediction: "FALLBACK",
      source: "empty-fallback",
    });
    expect(r.predictions.at(-1)).toMatchObject({
      id: "bad",
      prediction: "0",
      source: "placeholder",
    });
    expect(r.placeholders).toBe(1);
    expect(r.emptyGenerations).toBe(1);
    expect(r.predictions.every((p) => p.prediction.trim() !== "")).toBe(true);
  });

  it("stops when the next unit won't fit the deadline and fills the rest", async () => {
    // A fake clock: every scorer call takes 10 ms, every generate call 100 ms per prompt.
    let clock = 0;
    const slowScorer: ChoiceScorer = {
      async scoreContinuations(p, c) {
        clock += 10;
        return scorer.scoreContinuations(p, c);
      },
    };
    const slowGenerator: TextGenerator = {
      async generate(prompts) {
        clock += 100 * prompts.length;
        return prompts.map(() => "gen");
      },
    };
    const r = await evaluateDataset(entries(), {
      scorer: slowScorer,
      generator: slowGenerator,
      generationBatchSize: 1,
      deadline: 150,
      now: () => clock,
      progress: false,
    });
    // MC: 2 × 10 ms (t=20). Generation: first batch always tried (t=120); the next is
    // estimated at 100 ms → 220 > 150 → stop. Two generation rows are cut.
    expect(r.cutByBudget).toBe(2);
    const bySource = Object.fromEntries(r.predictions.map((p) => [p.id, p.source]));
    expect(bySource).toEqual({
      "g-long": "budget-fallback",
      m1: "model",
      g1: "model",
      m2: "model",
      g2: "budget-fallback",
    });
    expect(r.predictions.map((p) => p.id)).toEqual(["g-long", "m1", "g1", "m2", "g2"]);
    expect(r.predictions.find((p) => p.id === "g2")!.prediction).toBe("unknown");
  });

  it("reports progress to a sink", async () => {
    const events: string[] = [];
    const sink: ProgressSink = {
      start: (t, w) => events.push(`start ${t} ${w}`),
      update: (d, w) => events.push(`${d} ${w}`),
      stop: () => events.push("stop"),
    };
    const { generator } = recordingGenerator();
    await evaluateDataset(entries(), { scorer, generator, progress: sink });
    expect(events).toEqual([
      "start 5 multiple choice",
      "1 multiple choice",
      "2 multiple choice",
      "5 generation",
      "stop",
    ]);
  });

  it("rejects a scorer that returns the wrong number of scores", async () => {
    const bad: ChoiceScorer = { scoreContinuations: async () => [] };
    const { generator } = recordingGenerator();
    await expect(
      evaluateDataset(entries(), { scorer: bad, generator, progress: false }),
    ).rejects.toThrow(/returned 0 scores for 3 choices \(row 2, id "m1"\)/);
  });

  it("answers nothing once the deadline has passed", async () => {
    let calls = 0;
    const counting: ChoiceScorer = {
      async scoreContinuations(p, c) {
        calls++;
        return scorer.scoreContinuations(p, c);
      },
    };
    const { generator, calls: genCalls } = recordingGenerator();
    const r = await evaluateDataset(entries(), {
      scorer: counting,
      generator,
      deadline: 100,
      now: () => 100,
      progress: false,
    });
    expect(calls).toBe(0);
    expect(genCalls).toHaveLength(0);
    expect(r.cutByBudget).toBe(5);
    expect(r.predictions.map((p) => p.prediction)).toEqual([
      "unknown",
      "0",
      "unknown",
      "0",
      "unknown",
    ]);
  });

  it("onRowError fallback records failures and still answers every row", async () => {
    const flaky: ChoiceScorer = {
      async scoreContinuations(p, c) {
        if (c.length === 2) throw new Error("prompt too long");
        return scorer.scoreContinuations(p, c);
      },
    };
    const failing: TextGenerator = {
      async generate() {
        throw new Error("out of memory");
      },
    };
    const r = await evaluateDataset(entries(), {
      scorer: flaky,
      generator: failing,
      onRowError: "fallback",
      progress: false,
    });
    expect(r.rowErrors.map((e) => [e.id, e.message])).toEqual([
      ["m2", "prompt too long"],
      ["g1", "out of memory"],
      ["g2", "out of memory"],
      ["g-long", "out of memory"],
    ]);
    expect(r.predictions.map((p) => p.source)).toEqual([
      "error-fallback",
      "model",
      "error-fallback",
      "error-fallback",
      "error-fallback",
    ]);
    // Without the option the first failure propagates.
    await expect(
      evaluateDataset(entries(), { scorer: flaky, generator: failing, progress: false }),
    ).rejects.toThrow("prompt too long");
  });
});

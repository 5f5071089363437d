import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildOnnxModel,
  CHOICE_TOKENIZATIONS,
  type ContinuationScore,
  FUSED_OPS,
  MistralOnnxError,
  MistralRunner,
} from "../src/index.js";
import {
  buildAndOpen,
  FIXTURES,
  MODELS,
  type ModelReference,
  readReferenceJson,
  tempDir,
} from "./helpers.js";

// "batched" (one left-padded forward of prompt ++ choice per row, no cache) against
// "shared-cache" (prompt once, then each choice on its cache), and both against the transformers
// reference scores in test/fixtures/*/reference.json.
const TOL = 1e-4;
const CASES = MODELS.flatMap((kind) => FUSED_OPS.map((fusedOps) => [kind, fusedOps] as const));

/** Edge cases beyond the fixture rows; the first prompt is longer than Mistral's window (4). */
const EDGE_ROWS: Array<{ prompt: string; choices: string[]; what: string }> = [
  {
    what: "single-token choices only",
    prompt: "The capital of France is",
    choices: [" a", " b", "c"],
  },
  {
    what: "a choice with no tokens, next to ones that have them",
    prompt: "Hello there,",
    choices: ["", " world", " my dear old friend how are you"],
  },
  { what: "duplicate choices", prompt: "1 2 3", choices: [" 4", " 4", " four", " four"] },
  {
    what: "very different choice lengths",
    prompt: "Water boils at",
    choices: [" 1", " one hundred degrees Celsius at sea level, and less at the top of a mountain"],
  },
  { what: "one choice", prompt: "Question: yes or no? Answer:", choices: [" yes"] },
  { what: "one multi-token choice", prompt: "Once", choices: [" upon a time there was"] },
];

function expectSameScores(got: ContinuationScore[], want: ContinuationScore[]): void {
  expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
  got.forEach((r, i) => {
    const w = want[i] as ContinuationScore;
    if (w.tokens === 0) {
      expect(r.sum).toBe(Number.NEGATIVE_INFINITY);
      expect(r.mean).toBe(Number.NEGATIVE_INFINITY);
      return;
    }
    expect(Number.isFinite(r.sum)).toBe(true);
    expect(Math.abs(r.sum - w.sum)).toBeLessThanOrEqual(TOL * w.tokens);
    expect(Math.abs(r.mean - w.mean)).toBeLessThanOrEqual(TOL);
  });
}

describe.each(CASES)('%s, fusedOps %s: choiceScoring "batched"', (kind, fusedOps) => {
  let runner: MistralRunner;
  let cleanup: () => Promise<void>;
  let json: ModelReference;

  beforeAll(async () => {
    ({ runner, cleanup } = await buildAndOpen(kind, { fusedOps }));
    json = await readReferenceJson(kind);
  });
  afterAll(() => cleanup());

  it("matches the transformers reference scores, both tokenization rules", async () => {
    const sets = [
      ["joined", json.scores],
      ["separate", json.scoresSeparate],
    ] as const;
    let multiToken = 0;
    for (const [tokenization, rows] of sets) {
      expect(rows.length).toBeGreaterThan(0);
      for (const s of rows) {
        const got = await runner.scoreContinuations(
          s.prompt,
          s.choices.map((c) => c.choice),
          { tokenization, scoring: "batched" },
        );
        expectSameScores(got, s.choices);
        multiToken += s.choices.filter((c) => c.tokens > 1).length;
      }
    }
    expect(multiToken).toBeGreaterThan(0);
  });

  it('equals "shared-cache" on the fixture rows and the edge cases, both tokenization rules', async () => {
    const rows = [
      ...json.scores.map((s) => ({ prompt: s.prompt, choices: s.choices.map((c) => c.choice) })),
      ...EDGE_ROWS,
    ];
    let empty = 0;
    for (const tokenization of CHOICE_TOKENIZATIONS) {
      for (const row of rows) {
        const shared = await runner.scoreContinuations(row.prompt, row.choices, {
          tokenization,
          scoring: "shared-cache",
        });
        const batched = await runner.scoreContinuations(row.prompt, row.choices, {
          tokenization,
          scoring: "batched",
        });
        expectSameScores(batched, shared);
        empty += shared.filter((r) => r.tokens === 0).length;
      }
    }
    expect(empty).toBeGreaterThan(0); // the no-token choice was exercised
  });

  it("scores duplicate choices identically, and a choice the same whatever its neighbours", async () => {
    const prompt = "1 2 3";
    const [a, b] = await runner.scoreContinuations(prompt, [" four", " four"], {
      scoring: "batched",
    });
    expect(a).toEqual(b);
    const [alone] = await runner.scoreContinuations(prompt, [" four"], { scoring: "batched" });
    const [, padded] = await runner.scoreContinuations(
      prompt,
      [" a much longer choice than the other one", " four"],
      { scoring: "batched" },
    );
    expect(Math.abs((padded?.sum as number) - (alone?.sum as number))).toBeLessThanOrEqual(TOL);
  });

  it("all choices without tokens: −Infinity each, and ids outside the vocabulary still throw", async () => {
    const s = await runner.scoreContinuations("Hello", ["", ""], {
      tokenization: "separate",
      scoring: "batched",
    });
    expect(s).toEqual([
      { sum: -Infinity, mean: -Infinity, tokens: 0 },
      { sum: -Infinity, mean: -Infinity, tokens: 0 },
    ]);
    const V = runner.config.vocabSize;
    const encode = runner.tokenizer.encode.bind(runner.tokenizer);
    runner.tokenizer.encode = (text, opts) => (text === " bad" ? [V] : encode(text, opts));
    try {
      await expect(
        runner.scoreContinuations("Hello", [" ok", " bad"], { scoring: "batched" }),
      ).rejects.toThrow(/token id \d+ in row 2 is outside the vocabulary/);
    } finally {
      runner.tokenizer.encode = encode;
    }
  });
});

describe("choiceScoring option", () => {
  it('defaults to "shared-cache"; create() takes "batched"; wrong values are MistralOnnxErrors naming the field', async () => {
    const t = await tempDir("choice-scoring");
    const modelDir = join(FIXTURES, "llama");
    try {
      const { onnxPath } = await buildOnnxModel({ modelDir, outDir: t.dir });
      const plain = await MistralRunner.create({ onnxPath, modelDir, threads: 1 });
      const batched = await MistralRunner.create({
        onnxPath,
        modelDir,
        threads: 1,
        choiceScoring: "batched",
      });
      try {
        expect(plain.choiceScoring).toBe("shared-cache");
        expect(batched.choiceScoring).toBe("batched");
        const a = await plain.scoreContinuations("Hi", [" there", " you all"]);
        const b = await batched.scoreContinuations("Hi", [" there", " you all"]);
        expectSameScores(b, a);
        const err = await plain
          .scoreContinuations("Hi", [" there"], { scoring: "tiled" as never })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MistralOnnxError);
        expect((err as MistralOnnxError).where.field).toBe("scoring");
        expect((err as Error).message).toMatch(/"shared-cache" or "batched"/);
      } finally {
        await plain.close();
        await batched.close();
      }
      const bad = await MistralRunner.create({
        onnxPath,
        modelDir,
        choiceScoring: "tiled" as never,
      }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(MistralOnnxError);
      expect((bad as MistralOnnxError).where.field).toBe("choiceScoring");
    } finally {
      await t.cleanup();
    }
  });
});

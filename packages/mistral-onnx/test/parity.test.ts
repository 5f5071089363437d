import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUSED_OPS, type MistralRunner, separateContinuationTokens } from "../src/index.js";
import {
  buildAndOpen,
  FIXTURES,
  type LogitsReference,
  logitsThroughCache,
  MODELS,
  type ModelReference,
  maxDiffValid,
  readLogitsReference,
  readReferenceJson,
  tiledCacheScores,
} from "./helpers.js";

const TOL = 1e-4;

// Every parity check runs on the standard graph and on the contrib-op graph (fusedOps).
const CASES = MODELS.flatMap((kind) => FUSED_OPS.map((fusedOps) => [kind, fusedOps] as const));

describe.each(CASES)("%s, fusedOps %s: parity with transformers (fp32)", (kind, fusedOps) => {
  let runner: MistralRunner;
  let cleanup: () => Promise<void>;
  let ref: LogitsReference;
  let json: ModelReference;

  beforeAll(async () => {
    ({ runner, cleanup } = await buildAndOpen(kind, { fusedOps }));
    ref = await readLogitsReference(join(FIXTURES, kind, "reference.safetensors"));
    json = await readReferenceJson(kind);
  });
  afterAll(() => cleanup());

  it("the reference batch is left-padded and longer than Mistral's sliding window", () => {
    expect(ref.mask.some((r) => r[0] === 0)).toBe(true);
    expect(ref.seq).toBeGreaterThan(runner.config.slidingWindow ?? 0);
  });

  it("logits of a left-padded batch, no cache", async () => {
    const got = await runner.logits(ref.rows);
    expect(got.length).toBe(ref.batch * ref.seq * runner.config.vocabSize);
    expect(maxDiffValid(got, ref.logits, ref.mask, runner.config.vocabSize)).toBeLessThanOrEqual(
      TOL,
    );
  });

  it("lastOnly logits are the last row of each sequence", async () => {
    const V = runner.config.vocabSize;
    const got = await runner.logits(ref.rows, { lastOnly: true });
    expect(got.length).toBe(ref.batch * V);
    const lastRef = new Float32Array(ref.batch * V);
    for (let b = 0; b < ref.batch; b++)
      lastRef.set(ref.logits.subarray(((b + 1) * ref.seq - 1) * V, (b + 1) * ref.seq * V), b * V);
    expect(
      maxDiffValid(
        got,
        lastRef,
        ref.rows.map(() => [1]),
        V,
      ),
    ).toBeLessThanOrEqual(TOL);
  });

  it("logits through the KV cache (padded prefill, then one token at a time) match a full pass", async () => {
    const V = runner.config.vocabSize;
    const pad = runner.tokenizer.padId;
    const ids = ref.mask.map((m, b) => {
      const row = ref.rows[b] as number[];
      return m.map((x, s) => (x ? (row[s - (m.length - row.length)] as number) : pad));
    });
    const got = await logitsThroughCache(runner, ids, ref.mask, 4);
    expect(maxDiffValid(got, ref.logits, ref.mask, V)).toBeLessThanOrEqual(TOL);
  });

  it("greedy generation is token-identical on 20 prompts (batched, left-padded)", async () => {
    expect(json.generations).toHaveLength(20);
    const got = await runner.generateIds(
      json.generations.map((g) => g.promptIds),
      { maxNewTokens: 10 },
    );
    // transformers keeps the EOS that ended a row; generateIds drops it.
    const eos = runner.tokenizer.eosId;
    const expected = json.generations.map((g) =>
      g.newIds.at(-1) === eos ? g.newIds.slice(0, -1) : g.newIds,
    );
    expect(
      expected.some(
        (ids, i) => ids.length < (json.generations[i] as { newIds: number[] }).newIds.length,
      ),
    ).toBe(kind === "llama"); // the llama fixture has a row that stops at EOS
    expect(got).toEqual(expected);
  });

  it("generate() returns the decoded continuations, the same at any batch size", async () => {
    const prompts = json.generations.map((g) => g.prompt);
    const texts = json.generations.map((g) => g.text);
    expect(await runner.generate(prompts, { maxNewTokens: 10 })).toEqual(texts);
    expect(await runner.generate(prompts, { maxNewTokens: 10, batchSize: 3 })).toEqual(texts);
  });

  it("stop strings cut the output before the first match", async () => {
    const g = json.generations.find(
      (x) => x.text.trim().length >= 6,
    ) as (typeof json.generations)[number];
    const stop = g.text.slice(3, 5);
    const expected = g.text.slice(0, g.text.indexOf(stop));
    expect(await runner.generate([g.prompt], { maxNewTokens: 10, stop: [stop] })).toEqual([
      expected,
    ]);
  });

  it('"separate" choice tokens score like a full forward pass over prompt ids + choice ids', async () => {
    const V = runner.config.vocabSize;
    for (const s of json.scores) {
      const choices = s.choices.map((c) => c.choice);
      const got = await runner.scoreContinuations(s.prompt, choices);
      const context = runner.tokenizer.encode(s.prompt);
      for (const [i, choice] of choices.entries()) {
        const cont = runner.tokenizer.encode(choice, { addSpecialTokens: false });
        const full = await runner.logits([[...context, ...cont]]);
        let sum = 0;
        for (const [j, t] of cont.entries()) {
          const row = full.subarray((context.length - 1 + j) * V, (context.length + j) * V);
          const max = Math.max(...row);
          let z = 0;
          for (const v of row) z += Math.exp(v - max);
          sum += (row[t] as number) - max - Math.log(z);
        }
        const r = got[i] as { sum: number; tokens: number };
        expect(r.tokens).toBe(cont.length);
        expect(Math.abs(r.sum - sum)).toBeLessThanOrEqual(TOL * cont.length);
      }
    }
  });

  // The tiled reference runs several multi-token rows on a cache, which GroupQueryAttention
  // refuses (fused.test.ts checks that error); the contrib graph's scores are checked against
  // PyTorch below.
  it.runIf(fusedOps === "none")(
    "per-choice scoring on the shared batch-1 cache equals the old tiled-cache batch (≤ 1e-5)",
    async () => {
      let multiToken = 0;
      for (const rule of ["joined", "separate"] as const) {
        for (const s of json.scores) {
          const choices = s.choices.map((c) => c.choice);
          const got = (
            await runner.scoreContinuations(s.prompt, choices, { tokenization: rule })
          ).filter((r) => r.tokens > 0);
          const old = await tiledCacheScores(runner, s.prompt, choices, rule);
          expect(got.map((r) => r.tokens)).toEqual(old.map((r) => r.tokens));
          got.forEach((r, i) => {
            expect(Math.abs(r.sum - (old[i] as { sum: number }).sum)).toBeLessThanOrEqual(1e-5);
            if (r.tokens > 1) multiToken++;
          });
        }
      }
      expect(multiToken).toBeGreaterThan(0);
    },
  );

  it("continuation scores match PyTorch (all tokens, the first included)", async () => {
    for (const s of json.scores) {
      const got = await runner.scoreContinuations(
        s.prompt,
        s.choices.map((c) => c.choice),
        { tokenization: "joined" }, // the fixture script's rule
      );
      s.choices.forEach((c, i) => {
        const r = got[i] as { sum: number; mean: number; tokens: number };
        expect(r.tokens).toBe(c.tokens);
        expect(Math.abs(r.sum - c.sum)).toBeLessThanOrEqual(TOL * c.tokens);
        expect(Math.abs(r.mean - c.mean)).toBeLessThanOrEqual(TOL);
      });
    }
  });

  it('default ("separate") scores match PyTorch over enc(prompt) + enc(choice alone)', async () => {
    expect(json.scoresSeparate.length).toBeGreaterThan(0);
    let differsFromJoined = false;
    for (const [k, s] of json.scoresSeparate.entries()) {
      const got = await runner.scoreContinuations(
        s.prompt,
        s.choices.map((c) => c.choice),
      ); // default tokenization
      const toks = separateContinuationTokens(
        runner.tokenizer,
        s.prompt,
        s.choices.map((c) => c.choice),
      );
      expect(toks.continuations).toEqual(s.choices.map((c) => c.continuationIds));
      for (const c of s.choices) expect(toks.context).toEqual(c.contextIds);
      s.choices.forEach((c, i) => {
        const r = got[i] as { sum: number; mean: number; tokens: number };
        expect(r.tokens).toBe(c.tokens);
        expect(Math.abs(r.sum - c.sum)).toBeLessThanOrEqual(TOL * c.tokens);
        expect(Math.abs(r.mean - c.mean)).toBeLessThanOrEqual(TOL);
        const joined = json.scores[k]?.choices[i];
        if (joined && joined.continuationIds.join() !== c.continuationIds.join())
          differsFromJoined = true;
      });
    }
    // The fixture covers a case where the two rules tokenize a choice differently.
    expect(differsFromJoined).toBe(true);
  });
});

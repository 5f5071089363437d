import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOnnxModel, type FusedOps, type MistralRunner } from "../src/index.js";
import { onnx } from "../src/onnx/proto.js";
import {
  buildAndOpen,
  FIXTURES,
  type LogitsReference,
  logitsThroughCache,
  maxDiffValid,
  readLogitsReference,
  tempDir,
  tiledCacheScores,
} from "./helpers.js";

/**
 * fusedOps "contrib" against the standard graph. Parity with transformers is in parity.test.ts,
 * deltas.test.ts and routed.test.ts, which run every case on both graphs; here: which ops the
 * graph really holds, fp16 (no PyTorch reference), positions the fixture never reaches, and
 * GroupQueryAttention's one refusal.
 */

const V = 986;

async function opTypes(kind: "mistral" | "llama", fusedOps: FusedOps) {
  const t = await tempDir(`ops-${kind}`);
  try {
    const { onnxPath } = await buildOnnxModel({
      modelDir: join(FIXTURES, kind),
      outDir: t.dir,
      fusedOps,
    });
    const model = onnx.ModelProto.decode(await readFile(onnxPath));
    const count = new Map<string, number>();
    for (const n of model.graph?.node ?? []) {
      const key = `${n.domain || ""}:${n.opType}`;
      count.set(key, (count.get(key) ?? 0) + 1);
    }
    return count;
  } finally {
    await t.cleanup();
  }
}

describe("graph contents", () => {
  it('"contrib": one GQA and two rotaries per layer, 2L skip norms + 1 norm, no Softmax/Pow', async () => {
    const L = 2; // both fixtures
    const ops = await opTypes("mistral", "contrib");
    expect(ops.get("com.microsoft:GroupQueryAttention")).toBe(L);
    expect(ops.get("com.microsoft:RotaryEmbedding")).toBe(2 * L);
    expect(ops.get("com.microsoft:SkipSimplifiedLayerNormalization")).toBe(2 * L);
    expect(ops.get(":SimplifiedLayerNormalization")).toBe(1);
    expect(ops.get(":Softmax")).toBeUndefined();
    expect(ops.get(":Pow")).toBeUndefined();
  });

  it('"none" (the default): standard ONNX ops only', async () => {
    const ops = await opTypes("llama", "none");
    expect([...ops.keys()].filter((k) => !k.startsWith(":"))).toEqual([]);
    expect(ops.get(":Softmax")).toBe(2);
  });
});

describe.each(["fp32", "fp16"] as const)("%s: contrib graph vs standard graph", (dtype) => {
  let std: Awaited<ReturnType<typeof buildAndOpen>>;
  let fused: Awaited<ReturnType<typeof buildAndOpen>>;
  let ref: LogitsReference;
  // fp32: both graphs compute the same float32 ops in another order. fp16: both round to half
  // precision at different places (the fused norm keeps the residual sum in float32, ...).
  const tol = dtype === "fp32" ? 1e-4 : 5e-2;

  beforeAll(async () => {
    ref = await readLogitsReference(join(FIXTURES, "mistral", "reference.safetensors"));
    std = await buildAndOpen("mistral", { dtype });
    fused = await buildAndOpen("mistral", { dtype, fusedOps: "contrib" });
  });
  afterAll(async () => {
    await std?.cleanup();
    await fused?.cleanup();
  });

  const paddedIds = (runner: MistralRunner) =>
    ref.mask.map((m, b) => {
      const row = ref.rows[b] as number[];
      return m.map((x, s) =>
        x ? (row[s - (m.length - row.length)] as number) : runner.tokenizer.padId,
      );
    });

  it("left-padded batch longer than the sliding window: same logits, and close to transformers fp32", async () => {
    expect(ref.seq).toBeGreaterThan(fused.runner.config.slidingWindow ?? Infinity);
    const a = await std.runner.logits(ref.rows);
    const b = await fused.runner.logits(ref.rows);
    expect(maxDiffValid(a, b, ref.mask, V)).toBeLessThanOrEqual(tol);
    expect(maxDiffValid(b, ref.logits, ref.mask, V)).toBeLessThanOrEqual(
      dtype === "fp32" ? 1e-4 : 5e-2,
    );
    for (const x of b) expect(Number.isFinite(x)).toBe(true); // padding rows too: no NaN from the bias
  });

  it("KV cache (padded prefill, then one token at a time past the window) equals the full pass", async () => {
    const full = await fused.runner.logits(ref.rows);
    const cached = await logitsThroughCache(fused.runner, paddedIds(fused.runner), ref.mask, 6);
    expect(maxDiffValid(cached, full, ref.mask, V)).toBeLessThanOrEqual(
      dtype === "fp32" ? 1e-5 : 1e-2,
    );
  });

  it("positions far beyond the fixture's max_position_embeddings (256) rotate as in the standard graph", async () => {
    // Rotary is invariant to a common shift, so the positions are spread out (gaps of 37) to
    // make the distances differ from the consecutive case; the per-call angle cache has no
    // position limit (a [max_position, D/2] table would).
    const ids = [ref.rows[0]?.slice(0, 7) as number[]];
    const mask = [ids[0]?.map(() => 1) as number[]];
    const step = {
      inputIds: ids,
      attentionMask: mask,
      positionIds: [ids[0]?.map((_, i) => 5000 + 37 * i) as number[]],
    };
    const a = await std.runner.forward(step);
    const b = await fused.runner.forward(step);
    const consecutive = await fused.runner.forward({
      ...step,
      positionIds: [ids[0]?.map((_, i) => i) as number[]],
    });
    expect(maxDiffValid(a.logits, b.logits, mask, V)).toBeLessThanOrEqual(tol);
    // the positions reach the rotary (a rotary that ignored them would pass the line above)
    expect(maxDiffValid(b.logits, consecutive.logits, mask, V)).toBeGreaterThan(0.5);
  });

  it("multiple-choice scores on the shared prompt cache equal the standard graph's", async () => {
    const prompt = "The capital of France is";
    const choices = [" Paris", " London and more words", " a city"];
    const a = await std.runner.scoreContinuations(prompt, choices);
    const b = await fused.runner.scoreContinuations(prompt, choices);
    b.forEach((r, i) => {
      expect(r.tokens).toBe(a[i]?.tokens);
      expect(Math.abs(r.sum - (a[i]?.sum as number))).toBeLessThanOrEqual(tol * r.tokens);
    });
  });

  // Not in fp16: the two graphs round at different places, and on this random model (near-tied
  // logits) that can flip a greedy choice, so token identity is asserted in fp32 only.
  it.runIf(dtype === "fp32")(
    "greedy generation (batched, left-padded) is token-identical",
    async () => {
      const prompts = ["Hello", "The quick brown fox jumps", "1 2 3"];
      expect(await fused.runner.generate(prompts, { maxNewTokens: 8 })).toEqual(
        await std.runner.generate(prompts, { maxNewTokens: 8 }),
      );
    },
  );
});

describe("GroupQueryAttention's limit", () => {
  it("several multi-token rows on top of a cache are refused with onnxruntime's message (the runner never does this)", async () => {
    const r = await buildAndOpen("mistral", { fusedOps: "contrib" });
    try {
      await expect(
        tiledCacheScores(r.runner, "The capital of France is", [" Paris is", " London is"]),
      ).rejects.toThrow(/batch_size must be 1 when sequence_length > 1 and past context is given/);
    } finally {
      await r.cleanup();
    }
  });

  it('several multi-token rows with an empty past are accepted: choiceScoring "batched" runs and equals "shared-cache"', async () => {
    const r = await buildAndOpen("mistral", { fusedOps: "contrib" });
    try {
      const prompt = "The capital of France is";
      const choices = [" Paris is", " London is big", " a"];
      const batched = await r.runner.scoreContinuations(prompt, choices, { scoring: "batched" });
      const shared = await r.runner.scoreContinuations(prompt, choices);
      expect(batched.map((x) => x.tokens)).toEqual(shared.map((x) => x.tokens));
      expect(batched.filter((x) => x.tokens > 1).length).toBeGreaterThan(1);
      batched.forEach((x, i) => {
        expect(Math.abs(x.sum - (shared[i]?.sum as number))).toBeLessThanOrEqual(1e-4 * x.tokens);
      });
    } finally {
      await r.cleanup();
    }
  });
});

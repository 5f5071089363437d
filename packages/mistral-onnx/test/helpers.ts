import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { expect } from "vitest";
import {
  buildOnnxModel,
  type BuildOnnxModelOptions,
  type ChoiceTokenization,
  continuationTokens,
  MistralRunner,
  separateContinuationTokens,
} from "../src/index.js";
import { tileKvCache } from "../src/kv-cache.js";
import { logProbOf } from "../src/scoring.js";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");
export const MODELS = ["mistral", "llama"] as const;
export type ModelKind = (typeof MODELS)[number];

export interface GenerationRef {
  prompt: string;
  promptIds: number[];
  newIds: number[];
  text: string;
}
export interface ScoreRef {
  prompt: string;
  choices: Array<{
    choice: string;
    contextIds: number[];
    continuationIds: number[];
    sum: number;
    mean: number;
    tokens: number;
  }>;
}
export interface ModelReference {
  batchTexts: string[];
  generations: GenerationRef[];
  /** Joined (lm-evaluation-harness) rule. */
  scores: ScoreRef[];
  /** "separate" rule: contextIds = enc(prompt) with BOS, continuationIds = enc(choice) alone. */
  scoresSeparate: ScoreRef[];
}

/** A left-padded batch and transformers' logits for it (pad positions zeroed). */
export interface LogitsReference {
  batch: number;
  seq: number;
  rows: number[][]; // unpadded token ids
  mask: number[][]; // batch × seq
  logits: Float32Array; // batch × seq × vocab
}

export async function readReferenceJson(kind: ModelKind): Promise<ModelReference> {
  return JSON.parse(
    await readFile(join(FIXTURES, kind, "reference.json"), "utf8"),
  ) as ModelReference;
}

export async function readLogitsReference(file: string): Promise<LogitsReference> {
  const ck = await SafetensorsCheckpoint.open(file);
  try {
    const [batch, seq] = ck.info("input_ids").shape as [number, number];
    const ids = new BigInt64Array((await ck.readBytes("input_ids")).slice().buffer);
    const m = new BigInt64Array((await ck.readBytes("attention_mask")).slice().buffer);
    const rows: number[][] = [];
    const mask: number[][] = [];
    for (let b = 0; b < batch; b++) {
      const row: number[] = [];
      const mrow: number[] = [];
      for (let s = 0; s < seq; s++) {
        mrow.push(Number(m[b * seq + s]));
        if (m[b * seq + s] === 1n) row.push(Number(ids[b * seq + s]));
      }
      rows.push(row);
      mask.push(mrow);
    }
    return { batch, seq, rows, mask, logits: await ck.readF32("logits") };
  } finally {
    await ck.close();
  }
}

/** Max |a − b| over the non-padding positions of a batch × seq × vocab layout. */
export function maxDiffValid(
  a: Float32Array,
  b: Float32Array,
  mask: number[][],
  vocab: number,
): number {
  let max = 0;
  const seq = mask[0]?.length ?? 0;
  for (let bi = 0; bi < mask.length; bi++) {
    const row = mask[bi] as number[];
    for (let s = 0; s < row.length; s++) {
      if (!row[s]) continue;
      const off = (bi * seq + s) * vocab;
      for (let v = 0; v < vocab; v++)
        max = Math.max(max, Math.abs((a[off + v] as number) - (b[off + v] as number)));
    }
  }
  return max;
}

export async function tempDir(
  prefix: string,
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `mistral-onnx-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Builds a fixture model into a temp dir and opens a single-threaded runner on it. */
export async function buildAndOpen(
  kind: ModelKind,
  extra: Partial<BuildOnnxModelOptions> = {},
): Promise<{ runner: MistralRunner; cleanup: () => Promise<void> }> {
  const t = await tempDir(kind);
  const modelDir = join(FIXTURES, kind);
  const { onnxPath } = await buildOnnxModel({ modelDir, outDir: t.dir, ...extra });
  const runner = await MistralRunner.create({ onnxPath, modelDir, threads: 1 });
  return {
    runner,
    cleanup: async () => {
      await runner.close();
      await t.cleanup();
    },
  };
}

/**
 * Scores as the runner computed them before issue 10: the batch-1 prompt cache tiled once per
 * choice and all choices run as one right-padded batch (kept here as the reference).
 */
export async function tiledCacheScores(
  runner: MistralRunner,
  prompt: string,
  choices: string[],
  tokenization: ChoiceTokenization = "separate",
): Promise<Array<{ sum: number; tokens: number }>> {
  const V = runner.config.vocabSize;
  const rule = tokenization === "joined" ? continuationTokens : separateContinuationTokens;
  const { context, continuations } = rule(runner.tokenizer, prompt, choices);
  const P = context.length;
  const pre = await runner.forward({
    inputIds: [context],
    attentionMask: [context.map(() => 1)],
    positionIds: [context.map((_, i) => i)],
    logitsToKeep: 1,
  });
  const rows = continuations.filter((r) => r.length > 0);
  const L = Math.max(...rows.map((r) => r.length));
  const run = await runner.forward({
    inputIds: rows.map((r) => [
      ...r,
      ...new Array<number>(L - r.length).fill(runner.tokenizer.padId),
    ]),
    attentionMask: rows.map(() => new Array<number>(P + L).fill(1)),
    positionIds: rows.map(() => Array.from({ length: L }, (_, j) => P + j)),
    past: tileKvCache(pre.present, rows.length),
    logitsToKeep: 0,
  });
  return rows.map((r, b) => {
    let sum = logProbOf(pre.logits, 0, V, r[0] as number);
    for (let j = 1; j < r.length; j++)
      sum += logProbOf(run.logits, (b * L + j - 1) * V, V, r[j] as number);
    return { sum, tokens: r.length };
  });
}

/**
 * Logits of a padded batch (ids and mask: batch × seq, left padding) through the KV cache:
 * prefill all but the last `tail` positions, then one token at a time. batch × seq × V.
 */
export async function logitsThroughCache(
  runner: MistralRunner,
  ids: number[][],
  mask: number[][],
  tail: number,
): Promise<Float32Array> {
  const V = runner.config.vocabSize;
  const batch = ids.length;
  const seq = (mask[0] as number[]).length;
  const positions = mask.map((m) => {
    let p = -1;
    return m.map((x) => (x ? ++p : 0));
  });
  const split = seq - tail;
  const got = new Float32Array(batch * seq * V);
  const place = (logits: Float32Array, from: number, n: number) => {
    for (let b = 0; b < batch; b++)
      for (let s = 0; s < n; s++)
        got.set(logits.subarray((b * n + s) * V, (b * n + s + 1) * V), (b * seq + from + s) * V);
  };
  let r = await runner.forward({
    inputIds: ids.map((row) => row.slice(0, split)),
    attentionMask: mask.map((m) => m.slice(0, split)),
    positionIds: positions.map((p) => p.slice(0, split)),
  });
  place(r.logits, 0, split);
  for (let s = split; s < seq; s++) {
    r = await runner.forward({
      inputIds: ids.map((row) => [row[s] as number]),
      attentionMask: mask.map((m) => m.slice(0, s + 1)),
      positionIds: positions.map((p) => [p[s] as number]),
      past: r.present,
    });
    expect(r.present.length).toBe(s + 1);
    place(r.logits, s, 1);
  }
  return got;
}

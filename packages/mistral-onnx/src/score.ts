import { MistralOnnxError } from "./errors.js";
import type { ForwardFn } from "./forward.js";
import { tileKvCache } from "./kv-cache.js";
import type { ChoiceTokenization } from "./options.js";
import { continuationTokens, logProbOf, separateContinuationTokens } from "./scoring.js";
import type { Tokenizer } from "./tokenizer.js";

export interface ContinuationScore {
  sum: number;
  mean: number;
  tokens: number;
}

export interface ScoreContext {
  forward: ForwardFn;
  tokenizer: Tokenizer;
  vocabSize: number;
  /** Throws on ids outside the vocabulary. */
  checkIds: (rows: number[][]) => void;
}

/**
 * Per choice: the summed log-probability of all its tokens given the prompt (the first token
 * included) and the per-token mean. The prompt runs once; its KV cache is shared by all
 * choices. A choice that tokenizes to no tokens scores −Infinity.
 */
export async function scoreContinuations(
  ctx: ScoreContext,
  prompt: string,
  choices: string[],
  rule: ChoiceTokenization,
): Promise<ContinuationScore[]> {
  const V = ctx.vocabSize;
  const tokens = rule === "joined" ? continuationTokens : separateContinuationTokens;
  const { context, continuations } = tokens(ctx.tokenizer, prompt, choices);
  if (context.length === 0) {
    throw new MistralOnnxError(
      "scoreContinuations: the prompt tokenizes to no tokens and the tokenizer adds no BOS",
    );
  }
  ctx.checkIds([context, ...continuations]);
  const P = context.length;
  const pre = await ctx.forward({
    inputIds: [context],
    attentionMask: [context.map(() => 1)],
    positionIds: [context.map((_, i) => i)],
    logitsToKeep: 1,
  });
  const firstLogits = pre.logits; // vocab values: the distribution of the first choice token
  const results: ContinuationScore[] = continuations.map(() => ({ sum: 0, mean: 0, tokens: 0 }));
  const CHUNK = 16;
  const order = continuations
    .map((_, i) => i)
    .filter((i) => (continuations[i] as number[]).length > 0);
  for (let c0 = 0; c0 < order.length; c0 += CHUNK) {
    const idx = order.slice(c0, c0 + CHUNK);
    const rows = idx.map((i) => continuations[i] as number[]);
    const L = Math.max(...rows.map((r) => r.length));
    // Right-padded: a causal model never lets padding after a token change that token's logits.
    const ids = rows.map((r) => [
      ...r,
      ...new Array<number>(L - r.length).fill(ctx.tokenizer.padId),
    ]);
    const mask = rows.map(() => new Array<number>(P + L).fill(1));
    const positions = rows.map(() => Array.from({ length: L }, (_, j) => P + j));
    const run = await ctx.forward({
      inputIds: ids,
      attentionMask: mask,
      positionIds: positions,
      past: tileKvCache(pre.present, rows.length),
      logitsToKeep: 0,
    });
    rows.forEach((r, b) => {
      let sum = logProbOf(firstLogits, 0, V, r[0] as number);
      for (let j = 1; j < r.length; j++)
        sum += logProbOf(run.logits, (b * L + j - 1) * V, V, r[j] as number);
      results[idx[b] as number] = { sum, mean: sum / r.length, tokens: r.length };
    });
  }
  continuations.forEach((r, i) => {
    if (r.length === 0)
      results[i] = { sum: Number.NEGATIVE_INFINITY, mean: Number.NEGATIVE_INFINITY, tokens: 0 };
  });
  return results;
}

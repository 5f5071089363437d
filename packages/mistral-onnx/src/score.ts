import { MistralOnnxError } from "./errors.js";
import type { ForwardFn } from "./forward.js";
import { releaseKvCache } from "./kv-cache.js";
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
 * included) and the per-token mean. The prompt runs once; every choice then runs on its own
 * (batch 1) on top of that one prompt cache, which onnxruntime reads without it being copied per
 * choice. A single-token choice needs no forward of its own. A choice that tokenizes to no tokens
 * scores −Infinity.
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
  // One batch-1 forward per choice against the prompt's own cache: no per-choice copy of the
  // prompt cache is ever made (the old tiled batch held 2N+1 copies at the peak, this holds 2).
  for (const [i, r] of continuations.entries()) {
    if (r.length === 0) continue;
    let sum = logProbOf(firstLogits, 0, V, r[0] as number);
    if (r.length > 1) {
      // The last token's logits are not needed: it is scored by the previous position.
      const head = r.slice(0, -1);
      const run = await ctx.forward({
        inputIds: [head],
        attentionMask: [new Array<number>(P + head.length).fill(1)],
        positionIds: [head.map((_, j) => P + j)],
        past: pre.present,
        logitsToKeep: 0,
      });
      releaseKvCache(run.present);
      for (let j = 1; j < r.length; j++)
        sum += logProbOf(run.logits, (j - 1) * V, V, r[j] as number);
    }
    results[i] = { sum, mean: sum / r.length, tokens: r.length };
  }
  releaseKvCache(pre.present);
  continuations.forEach((r, i) => {
    if (r.length === 0)
      results[i] = { sum: Number.NEGATIVE_INFINITY, mean: Number.NEGATIVE_INFINITY, tokens: 0 };
  });
  return results;
}

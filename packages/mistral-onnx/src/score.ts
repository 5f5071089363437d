import { MistralOnnxError } from "./errors.js";
import { type ForwardFn, leftPad } from "./forward.js";
import { releaseKvCache } from "./kv-cache.js";
import { type ChoiceScoring, type ChoiceTokenization, DEFAULT_CHOICE_SCORING } from "./options.js";
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

const NO_TOKENS: ContinuationScore = {
  sum: Number.NEGATIVE_INFINITY,
  mean: Number.NEGATIVE_INFINITY,
  tokens: 0,
};

/**
 * Per choice: the summed log-probability of all its tokens given the prompt (the first token
 * included) and the per-token mean. A choice that tokenizes to no tokens scores −Infinity.
 * `scoring` picks how the forwards are laid out (see `ChoiceScoring`); the scores are the same.
 */
export async function scoreContinuations(
  ctx: ScoreContext,
  prompt: string,
  choices: string[],
  rule: ChoiceTokenization,
  scoring: ChoiceScoring = DEFAULT_CHOICE_SCORING,
): Promise<ContinuationScore[]> {
  const tokens = rule === "joined" ? continuationTokens : separateContinuationTokens;
  const { context, continuations } = tokens(ctx.tokenizer, prompt, choices);
  if (context.length === 0) {
    throw new MistralOnnxError(
      "scoreContinuations: the prompt tokenizes to no tokens and the tokenizer adds no BOS",
    );
  }
  ctx.checkIds([context, ...continuations]);
  return scoring === "batched"
    ? batchedScores(ctx, context, continuations)
    : sharedCacheScores(ctx, context, continuations);
}

/**
 * "shared-cache": the prompt runs once; every choice then runs on its own (batch 1) on top of
 * that one prompt cache, which onnxruntime reads without it being copied per choice. A
 * single-token choice needs no forward of its own.
 */
async function sharedCacheScores(
  ctx: ScoreContext,
  context: number[],
  continuations: number[][],
): Promise<ContinuationScore[]> {
  const V = ctx.vocabSize;
  const P = context.length;
  const pre = await ctx.forward({
    inputIds: [context],
    attentionMask: [context.map(() => 1)],
    positionIds: [context.map((_, i) => i)],
    logitsToKeep: 1,
  });
  const firstLogits = pre.logits; // vocab values: the distribution of the first choice token
  const results: ContinuationScore[] = continuations.map(() => ({ ...NO_TOKENS }));
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
  return results;
}

/**
 * "batched": every choice with tokens becomes one row context ++ choice of a single left-padded
 * batch with no cache. Left padding puts every row's continuation at the end, so with L the
 * longest choice only the last L + 1 positions' logits are kept: for a choice of n tokens, kept
 * position L − n (the prompt's last token) scores its first token, L − n + j its token j, and the
 * last kept position (which scores nothing) is there only because the longest row needs its
 * prompt's last position. The padding rows' positions count real tokens only (leftPad), so each
 * row sees exactly the ids and positions the shared-cache path feeds.
 */
async function batchedScores(
  ctx: ScoreContext,
  context: number[],
  continuations: number[][],
): Promise<ContinuationScore[]> {
  const V = ctx.vocabSize;
  const scored = continuations.flatMap((r, i) => (r.length > 0 ? [i] : []));
  const results: ContinuationScore[] = continuations.map(() => ({ ...NO_TOKENS }));
  if (scored.length === 0) return results;
  const rows = scored.map((i) => continuations[i] as number[]);
  const longest = Math.max(...rows.map((r) => r.length));
  const keep = longest + 1;
  const { ids, mask, positions } = leftPad(
    rows.map((r) => [...context, ...r]),
    ctx.tokenizer.padId,
  );
  const run = await ctx.forward({
    inputIds: ids,
    attentionMask: mask,
    positionIds: positions,
    logitsToKeep: keep,
  });
  releaseKvCache(run.present);
  if (run.kept !== keep) {
    throw new MistralOnnxError(
      `scoreContinuations: the model returned logits for ${run.kept} positions, expected ${keep}`,
    );
  }
  rows.forEach((r, b) => {
    const first = b * keep + (longest - r.length); // kept row of the prompt's last token
    let sum = 0;
    for (const [j, t] of r.entries()) sum += logProbOf(run.logits, (first + j) * V, V, t);
    results[scored[b] as number] = { sum, mean: sum / r.length, tokens: r.length };
  });
  return results;
}

import type { Tokenizer } from "./tokenizer.js";

export interface ContinuationTokens {
  /** Context tokens, BOS included; the same for every choice, so its KV cache is shared. */
  context: number[];
  /** Per choice, the tokens scored. */
  continuations: number[][];
}

/**
 * How a choice is tokenized for scoring:
 * - "separate" (default): context = encode(prompt) with special tokens, each choice encoded on
 *   its own without them, ids concatenated. This is how Mistral/Llama-style (sentencepiece,
 *   prepend "▁") models are usually fine-tuned on prompt/answer pairs (the embedded zoo is), so
 *   a choice "42" is scored as the word " 42" that training put after the prompt.
 * - "joined": the lm-evaluation-harness rule, see `continuationTokens`.
 */
export type { ChoiceTokenization } from "./options.js";

/** Tokens of the "separate" rule: encode(prompt) with BOS, then encode(choice) alone. */
export function separateContinuationTokens(
  tok: Tokenizer,
  prompt: string,
  choices: string[],
): ContinuationTokens {
  return {
    context: tok.encode(prompt),
    continuations: choices.map((c) => tok.encode(c, { addSpecialTokens: false })),
  };
}

/**
 * The lm-evaluation-harness rule: trailing whitespace of the prompt moves to the front of each
 * choice; context = encode(prompt) with special tokens; a choice's tokens are
 * encode(prompt + choice)[len(context):]. When the tokenizer merges across the boundary, the
 * context is still encode(prompt) and the choice keeps the tokens after it.
 */
export function continuationTokens(
  tok: Tokenizer,
  prompt: string,
  choices: string[],
): ContinuationTokens {
  const trimmed = prompt.replace(/\s+$/u, "");
  const moved = prompt.slice(trimmed.length);
  const context = tok.encode(trimmed);
  const continuations = choices.map((c) => tok.encode(trimmed + moved + c).slice(context.length));
  return { context, continuations };
}

/** log softmax(logits)[target] over one row, in float64. */
export function logProbOf(
  logits: Float32Array,
  offset: number,
  vocab: number,
  target: number,
): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i] as number;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp((logits[offset + i] as number) - max);
  return (logits[offset + target] as number) - max - Math.log(sum);
}

/** Index of the largest value in a row (first one on ties, like torch.argmax). */
export function argmaxRow(logits: Float32Array, offset: number, vocab: number): number {
  let best = 0;
  let bestV = logits[offset] as number;
  for (let i = 1; i < vocab; i++) {
    const v = logits[offset + i] as number;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

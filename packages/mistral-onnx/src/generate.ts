import type { ForwardFn } from "./forward.js";
import { leftPad } from "./forward.js";
import { argmaxRow } from "./scoring.js";
import type { Tokenizer } from "./tokenizer.js";

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Generation of a row stops at the first of these strings; the string is not returned. */
  stop?: string[];
  /** Prompts run together, left-padded (default 8). */
  batchSize?: number;
}

export interface GenerateIdsOptions {
  maxNewTokens?: number;
  /** Called after each new token of a row; true ends that row. */
  stopWhen?: (row: number, newIds: number[]) => boolean;
}

export interface GenerateContext {
  forward: ForwardFn;
  tokenizer: Tokenizer;
  vocabSize: number;
  /** config.json's eos_token_ids (the tokenizer's EOS is added). */
  eosTokenIds: readonly number[];
}

/**
 * Greedy generation for token rows, batched with left padding. Returns the new tokens per row,
 * without the EOS that ended it. Ids must already be checked against the vocabulary.
 */
export async function generateIds(
  ctx: GenerateContext,
  prompts: number[][],
  options: GenerateIdsOptions = {},
): Promise<number[][]> {
  const maxNew = options.maxNewTokens ?? 64;
  const V = ctx.vocabSize;
  const pad = ctx.tokenizer.padId;
  const eos = new Set<number>(ctx.eosTokenIds);
  if (ctx.tokenizer.eosId !== undefined) eos.add(ctx.tokenizer.eosId);
  const B = prompts.length;
  const out: number[][] = prompts.map(() => []);
  if (B === 0 || maxNew <= 0) return out;
  const done = new Array<boolean>(B).fill(false);
  const { ids, mask, positions } = leftPad(prompts, pad);
  const nextPos = prompts.map((p) => p.length);
  let r = await ctx.forward({
    inputIds: ids,
    attentionMask: mask,
    positionIds: positions,
    logitsToKeep: 1,
  });
  let attn = mask;
  for (let t = 0; t < maxNew; t++) {
    const next: number[] = [];
    for (let b = 0; b < B; b++) {
      const tok = argmaxRow(r.logits, b * r.kept * V + (r.kept - 1) * V, V);
      next.push(done[b] ? pad : tok);
      if (done[b]) continue;
      if (eos.has(tok)) {
        done[b] = true;
        continue;
      }
      (out[b] as number[]).push(tok);
      if (options.stopWhen?.(b, out[b] as number[])) done[b] = true;
    }
    if (done.every(Boolean) || t === maxNew - 1) break;
    attn = attn.map((row) => [...row, 1]);
    r = await ctx.forward({
      inputIds: next.map((x) => [x]),
      attentionMask: attn,
      positionIds: nextPos.map((p, b) => {
        nextPos[b] = p + 1;
        return [p];
      }),
      past: r.present,
      logitsToKeep: 1,
    });
  }
  return out;
}

/** `text` cut before the first occurrence of any stop string. */
export function cutAtStop(text: string, stops: readonly string[]): string {
  let end = text.length;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0 && at < end) end = at;
  }
  return text.slice(0, end);
}

/**
 * Greedy continuations of text prompts (special tokens skipped), sorted by length into batches
 * so padding stays small; results keep input order. Each row stops at EOS, after maxNewTokens
 * (default 64), or at the first stop string, which is cut off with what follows.
 */
export async function generateTexts(
  ctx: GenerateContext & { checkIds: (rows: number[][]) => void },
  prompts: string[],
  options: GenerateOptions = {},
): Promise<string[]> {
  const tok = ctx.tokenizer;
  const stops = (options.stop ?? []).filter((s) => s.length > 0);
  const batchSize = Math.max(1, options.batchSize ?? 8);
  const encoded = prompts.map((p) => tok.encode(p));
  ctx.checkIds(encoded);
  const order = encoded
    .map((_, i) => i)
    .sort((a, b) => (encoded[a] as number[]).length - (encoded[b] as number[]).length || a - b);
  const texts = new Array<string>(prompts.length).fill("");
  for (let i = 0; i < order.length; i += batchSize) {
    const idx = order.slice(i, i + batchSize);
    const rows = idx.map((k) => encoded[k] as number[]);
    const ids = await generateIds(ctx, rows, {
      ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
      ...(stops.length
        ? {
            stopWhen: (_row: number, newIds: number[]) => {
              const text = tok.decode(newIds, { skipSpecialTokens: true });
              return stops.some((s) => text.includes(s));
            },
          }
        : {}),
    });
    idx.forEach((k, b) => {
      texts[k] = cutAtStop(tok.decode(ids[b] as number[], { skipSpecialTokens: true }), stops);
    });
  }
  return texts;
}

import type { ForwardFn } from "./forward.js";
import { leftPad } from "./forward.js";
import { releaseKvCache } from "./kv-cache.js";
import { argmaxRow } from "./scoring.js";
import type { Tokenizer } from "./tokenizer.js";

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Generation of a row stops at the first of these strings; the string is not returned. */
  stop?: string[];
  /** Prompts run together, left-padded (default 8). */
  batchSize?: number;
  /**
   * Encode prompts with the tokenizer's special tokens, such as BOS (default true). False for
   * prompts that already hold them, e.g. a rendered chat template (transformers'
   * apply_chat_template encodes its text with add_special_tokens=False too).
   */
  addSpecialTokens?: boolean;
  /**
   * Streaming: called with each new piece of a prompt's answer while it is generated (the
   * prompt's index, the piece). A prompt's pieces concatenate to exactly the text returned for it;
   * text that may begin a stop string, or an incomplete multi-byte character, is held back until
   * it is decided (see TextStreamer).
   */
  onText?: (prompt: number, piece: string) => void;
  /**
   * Once aborted, every row stops after its current token and keeps what it has (batches not
   * begun return ""). A forward pass under way is not interrupted.
   */
  signal?: AbortSignal;
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
  /**
   * The in-graph greedy loop (generate.onnx, loop-generate.ts), when the runner uses it: the
   * greedy token of every row at every step, rows cut here afterwards. Absent: the host loop.
   */
  greedyLoop?: GreedyLoopFn;
}

/**
 * Runs a whole greedy decode of a left-padded batch in one call: per row, the greedy token at
 * each step (at most maxNew; fewer when every row produced an EOS id). Tokens after a row's
 * first EOS are unspecified.
 */
export type GreedyLoopFn = (
  batch: { ids: number[][]; mask: number[][]; positions: number[][] },
  maxNew: number,
  eosIds: readonly number[],
  padId: number,
) => Promise<number[][]>;

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
  if (ctx.greedyLoop) {
    // Greedy tokens do not depend on where a row stops, so stopping is applied afterwards with
    // the same rules, in the same order, as the host loop below.
    const steps = await ctx.greedyLoop({ ids, mask, positions }, maxNew, [...eos], pad);
    return steps.map((row, b) => cutRow(row, b, maxNew, eos, options.stopWhen));
  }
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
    const past = r.present;
    r = await ctx.forward({
      inputIds: next.map((x) => [x]),
      attentionMask: attn,
      positionIds: nextPos.map((p, b) => {
        nextPos[b] = p + 1;
        return [p];
      }),
      past,
      logitsToKeep: 1,
    });
    releaseKvCache(past);
  }
  releaseKvCache(r.present);
  return out;
}

/** One row's greedy tokens cut as generateIds' host loop cuts them: EOS (dropped), stopWhen, maxNew. */
function cutRow(
  steps: readonly number[],
  row: number,
  maxNew: number,
  eos: ReadonlySet<number>,
  stopWhen: GenerateIdsOptions["stopWhen"],
): number[] {
  const out: number[] = [];
  for (const tok of steps.slice(0, maxNew)) {
    if (eos.has(tok)) break;
    out.push(tok);
    if (stopWhen?.(row, out)) break;
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

const REPLACEMENT = "\uFFFD";

/**
 * Watches one row's new tokens for stop strings without decoding the whole row each step.
 *
 * Keeps `text`, the decoded text of the first `read` (non-special) tokens, and decodes only a
 * window from `prefix` (the previous `read`, so the window starts with at least one token already
 * in `text`: decoders that strip the first leading space strip it on both sides of the
 * difference) to the end. The new text is that window's decode minus the decode of its committed
 * part. While it ends in U+FFFD (a multi-byte character whose byte tokens are not all there yet)
 * it is checked but not committed, so the next step decodes those bytes again together with what
 * completes them. A stop string is searched in the last (longest stop − 1) committed characters
 * plus the new text, so one that spans tokens is found at the token that completes it. When the
 * window's decode does not extend its committed part (a tokenizer whose decode is not
 * prefix-stable there), that step falls back to decoding the whole row, as before issue 10.
 */
export class StopStringMatcher {
  private readonly ids: number[] = [];
  private text = "";
  private prefix = 0;
  private read = 0;
  private readonly keep: number;
  private readonly stops: readonly string[];
  /** Characters decoded by the last `push` (window + fallback), for tests and benchmarks. */
  decodedChars = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    stops: readonly string[],
  ) {
    this.stops = stops.filter((s) => s.length > 0);
    this.keep = Math.max(0, ...this.stops.map((s) => s.length)) - 1;
  }

  /** Adds the row's next token; true when the row's text now contains a stop string. */
  push(id: number): boolean {
    if (this.stops.length === 0) return false;
    if (this.tokenizer.isSpecial(id)) return false; // skipped by the decode: text unchanged
    this.ids.push(id);
    const opts = { skipSpecialTokens: true };
    const committed = this.tokenizer.decode(this.ids.slice(this.prefix, this.read), opts);
    const window = this.tokenizer.decode(this.ids.slice(this.prefix), opts);
    this.decodedChars = committed.length + window.length;
    if (!window.startsWith(committed)) {
      const full = this.tokenizer.decode(this.ids, opts);
      this.decodedChars += full.length;
      const hit = this.stops.some((s) => full.includes(s));
      if (!full.endsWith(REPLACEMENT)) {
        this.text = full;
        this.prefix = this.ids.length - 1;
        this.read = this.ids.length;
      }
      return hit;
    }
    const tail = window.slice(committed.length);
    const recent = this.text.slice(Math.max(0, this.text.length - this.keep)) + tail;
    const hit = this.stops.some((s) => recent.includes(s));
    if (!tail.endsWith(REPLACEMENT)) {
      this.text += tail;
      this.prefix = this.read;
      this.read = this.ids.length;
    }
    return hit;
  }
}

/**
 * Streams one row's text while it is generated: `push` each new token, and `onText` gets the
 * text that is settled; `finish` with the row's final text hands over the rest, so the pieces
 * concatenate to exactly that text.
 *
 * Decoding is incremental as in StopStringMatcher: a window from `prefix` (a token already in
 * `text`, so decoders that strip a leading space strip it on both sides) is decoded and its
 * committed part's decode subtracted; new text ending in U+FFFD (a multi-byte character whose
 * bytes are not all there yet) is not committed, and neither is a run of byte-fallback tokens
 * until a token that is not a byte ends it (the run decodes as one), so a character split
 * across tokens is never shown half. Of the committed text, what could still begin a stop string (its longest
 * suffix that is a proper prefix of one) is held back, and nothing from a stop string on is
 * shown. A stop string can only start after the shown text (everything before was settled), so
 * it is searched from there. Where the window's decode does not extend its committed part (a
 * decode that is not prefix-stable), the whole row is decoded; if that no longer extends what
 * was shown, nothing more is shown until `finish`, which then adds only what extends it.
 */
export class TextStreamer {
  private readonly ids: number[] = [];
  private text = "";
  private prefix = 0;
  private read = 0;
  /** What onText has been given, in order. */
  private shown = "";
  private stopped = false;
  private diverged = false;
  private readonly stops: readonly string[];

  constructor(
    private readonly tokenizer: Tokenizer,
    stops: readonly string[],
    private readonly onText: (piece: string) => void,
  ) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Adds the row's next token and shows the text it settles. */
  push(id: number): void {
    if (this.stopped || this.diverged || this.tokenizer.isSpecial(id)) return;
    this.ids.push(id);
    // A run of byte tokens decodes as one (see Tokenizer.isByteToken): wait for its end.
    if (this.tokenizer.isByteToken(id)) return;
    const opts = { skipSpecialTokens: true };
    const committed = this.tokenizer.decode(this.ids.slice(this.prefix, this.read), opts);
    const window = this.tokenizer.decode(this.ids.slice(this.prefix), opts);
    if (window.startsWith(committed)) {
      const tail = window.slice(committed.length);
      if (tail.endsWith(REPLACEMENT)) return;
      this.text += tail;
    } else {
      const full = this.tokenizer.decode(this.ids, opts);
      if (full.endsWith(REPLACEMENT)) return;
      if (!full.startsWith(this.shown)) {
        this.diverged = true;
        return;
      }
      this.text = full;
    }
    this.prefix = this.read;
    this.read = this.ids.length;
    this.show();
  }

  /** Hands over the rest of the row's final text (cut at its stop string, as returned). */
  finish(finalText: string): void {
    if (finalText.startsWith(this.shown)) this.emit(finalText.slice(this.shown.length));
    this.stopped = true;
  }

  private show(): void {
    const from = this.shown.length;
    let end = this.text.length;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, from);
      if (at >= 0 && at < end) {
        end = at;
        this.stopped = true;
      }
    }
    if (!this.stopped) {
      // Hold back the longest suffix that may still grow into a stop string.
      for (const s of this.stops) {
        for (let n = Math.min(s.length - 1, end - from); n > 0; n--) {
          if (this.text.endsWith(s.slice(0, n))) {
            end = Math.min(end, this.text.length - n);
            break;
          }
        }
      }
    }
    this.emit(this.text.slice(from, end));
  }

  private emit(piece: string): void {
    if (piece.length === 0) return;
    this.shown += piece;
    this.onText(piece);
  }
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
  const addSpecialTokens = options.addSpecialTokens ?? true;
  const encoded = prompts.map((p) => tok.encode(p, { addSpecialTokens }));
  ctx.checkIds(encoded);
  const order = encoded
    .map((_, i) => i)
    .sort((a, b) => (encoded[a] as number[]).length - (encoded[b] as number[]).length || a - b);
  const texts = new Array<string>(prompts.length).fill("");
  const { onText, signal } = options;
  for (let i = 0; i < order.length; i += batchSize) {
    if (signal?.aborted) break;
    const idx = order.slice(i, i + batchSize);
    const rows = idx.map((k) => encoded[k] as number[]);
    const matchers = rows.map(() => new StopStringMatcher(tok, stops));
    const streamers = onText
      ? idx.map((k) => new TextStreamer(tok, stops, (piece) => onText(k, piece)))
      : undefined;
    const ids = await generateIds(ctx, rows, {
      ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
      ...(stops.length || streamers || signal
        ? {
            stopWhen: (row: number, newIds: number[]) => {
              const id = newIds.at(-1) as number;
              streamers?.[row]?.push(id);
              const hit = stops.length > 0 && (matchers[row] as StopStringMatcher).push(id);
              return hit || (signal?.aborted ?? false);
            },
          }
        : {}),
    });
    idx.forEach((k, b) => {
      texts[k] = cutAtStop(tok.decode(ids[b] as number[], { skipSpecialTokens: true }), stops);
      streamers?.[b]?.finish(texts[k]);
    });
  }
  return texts;
}

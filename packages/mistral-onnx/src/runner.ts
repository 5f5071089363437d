import * as ort from "onnxruntime-node";
import { type MistralConfig, readMistralConfig } from "./config.js";
import { MistralOnnxError } from "./errors.js";
import { IO } from "./graph.js";
import { emptyKvCache, type KvCache, type KvElem, type KvShape, tileKvCache } from "./kv-cache.js";
import {
  argmaxRow,
  type ChoiceTokenization,
  continuationTokens,
  logProbOf,
  separateContinuationTokens,
} from "./scoring.js";
import { Tokenizer } from "./tokenizer.js";

import {
  CHOICE_TOKENIZATIONS,
  DEFAULT_CHOICE_TOKENIZATION,
  DEFAULT_EXECUTION_PROVIDER,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
  formatChoices,
  isOneOf,
} from "./options.js";

export type { ExecutionProvider };

export interface MistralRunnerOptions {
  onnxPath: string;
  /** config.json and tokenizer files. */
  modelDir: string;
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (default: onnxruntime's choice, all physical cores). */
  threads?: number;
  /**
   * Let idle intra-op threads spin (onnxruntime's default, true): lower latency on a dedicated
   * machine; false avoids burning cores that other processes need on a shared one.
   */
  allowSpinning?: boolean;
  /** Called with a message when CUDA was asked for but is unavailable (default: console.warn). */
  onWarning?: (message: string) => void;
  /** How `scoreContinuations` tokenizes a choice (default "separate"; see `ChoiceTokenization`). */
  choiceTokenization?: ChoiceTokenization;
}

/** One forward step: a padded batch of new tokens on top of a KV cache. */
export interface ForwardStep {
  /** batch × seq token ids, row-major. */
  inputIds: number[][];
  /** batch × (past + seq): 1 = real token, 0 = padding. */
  attentionMask: number[][];
  /** batch × seq. */
  positionIds: number[][];
  past?: KvCache;
  /** Logits for the last K positions only; 0 = all. */
  logitsToKeep?: number;
}

export interface ForwardResult {
  /** batch × kept × vocab. */
  logits: Float32Array;
  kept: number;
  present: KvCache;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Generation of a row stops at the first of these strings; the string is not returned. */
  stop?: string[];
  /** Prompts run together, left-padded (default 8). */
  batchSize?: number;
}

export interface ContinuationScore {
  sum: number;
  mean: number;
  tokens: number;
}

function toBigInt64(rows: number[][], cols: number): BigInt64Array {
  const out = new BigInt64Array(rows.length * cols);
  rows.forEach((r, i) => {
    if (r.length !== cols)
      throw new MistralOnnxError(`row ${i} has ${r.length} values, expected ${cols}`);
    for (let j = 0; j < cols; j++) out[i * cols + j] = BigInt(r[j] as number);
  });
  return out;
}

/** Left-pads token rows; positions count real tokens only (transformers' cumsum(mask) − 1). */
export function leftPad(
  rows: number[][],
  padId: number,
): { ids: number[][]; mask: number[][]; positions: number[][] } {
  const len = Math.max(...rows.map((r) => r.length));
  const ids: number[][] = [];
  const mask: number[][] = [];
  const positions: number[][] = [];
  for (const r of rows) {
    const pad = len - r.length;
    ids.push([...new Array<number>(pad).fill(padId), ...r]);
    mask.push([...new Array<number>(pad).fill(0), ...new Array<number>(r.length).fill(1)]);
    positions.push([...new Array<number>(pad).fill(0), ...r.map((_, i) => i)]);
  }
  return { ids, mask, positions };
}

/**
 * Runs a decoder built by buildOnnxModel on onnxruntime-node: logits, continuation scoring with a
 * shared prompt KV cache, and batched greedy generation. Deterministic: greedy decoding, fixed
 * batching order.
 */
export class MistralRunner {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: Tokenizer,
    readonly config: MistralConfig,
    private readonly kv: KvShape,
    /** The provider actually in use (after any fallback). */
    readonly executionProvider: ExecutionProvider,
    readonly choiceTokenization: ChoiceTokenization,
  ) {}

  static async create(options: MistralRunnerOptions): Promise<MistralRunner> {
    const config = await readMistralConfig(options.modelDir);
    const tokenizer = await Tokenizer.fromDir(options.modelDir);
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
      ...(options.allowSpinning === false
        ? {
            extra: {
              session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } },
            },
          }
        : {}),
    };
    const warn = options.onWarning ?? ((m: string) => console.warn(m));
    let provider: ExecutionProvider = options.executionProvider ?? DEFAULT_EXECUTION_PROVIDER;
    if (!isOneOf(EXECUTION_PROVIDERS, provider)) {
      throw new MistralOnnxError(
        `executionProvider must be ${formatChoices(EXECUTION_PROVIDERS)}, got ${JSON.stringify(provider)}`,
      );
    }
    const tokenization = options.choiceTokenization ?? DEFAULT_CHOICE_TOKENIZATION;
    if (!isOneOf(CHOICE_TOKENIZATIONS, tokenization)) {
      throw new MistralOnnxError(
        `choiceTokenization must be ${formatChoices(CHOICE_TOKENIZATIONS)}, got ${JSON.stringify(tokenization)}`,
      );
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(options.onnxPath, {
        ...base,
        executionProviders: provider === "cuda" ? ["cuda", "cpu"] : ["cpu"],
      });
    } catch (e) {
      if (provider !== "cuda") throw cannotLoad(options.onnxPath, e);
      warn(
        `@merge/mistral-onnx: CUDA execution provider unavailable (${(e as Error).message.split("\n")[0]}); falling back to CPU`,
      );
      provider = "cpu";
      try {
        session = await ort.InferenceSession.create(options.onnxPath, {
          ...base,
          executionProviders: ["cpu"],
        });
      } catch (e2) {
        throw cannotLoad(options.onnxPath, e2);
      }
    }
    const pastMeta = session.inputMetadata.find((m) => m.name === IO.pastKey(0));
    let elem: KvElem = "float32";
    if (pastMeta?.isTensor && pastMeta.type === "float16") elem = "float16";
    const kv: KvShape = {
      layers: config.numLayers,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      elem,
    };
    return new MistralRunner(session, tokenizer, config, kv, provider, tokenization);
  }

  /** One forward pass. Exposed for callers that manage their own cache. */
  async forward(step: ForwardStep): Promise<ForwardResult> {
    const batch = step.inputIds.length;
    const seq = step.inputIds[0]?.length ?? 0;
    const past = step.past ?? emptyKvCache(this.kv, batch);
    const total = past.length + seq;
    if (past.batch !== batch) {
      throw new MistralOnnxError(
        `forward: past cache has batch ${past.batch}, inputs have ${batch}`,
      );
    }
    const feeds: Record<string, ort.Tensor> = {
      [IO.inputIds]: new ort.Tensor("int64", toBigInt64(step.inputIds, seq), [batch, seq]),
      [IO.attentionMask]: new ort.Tensor("int64", toBigInt64(step.attentionMask, total), [
        batch,
        total,
      ]),
      [IO.positionIds]: new ort.Tensor("int64", toBigInt64(step.positionIds, seq), [batch, seq]),
      [IO.logitsToKeep]: new ort.Tensor(
        "int64",
        BigInt64Array.from([BigInt(step.logitsToKeep ?? 0)]),
        [],
      ),
    };
    for (let l = 0; l < this.kv.layers; l++) {
      feeds[IO.pastKey(l)] = past.keys[l] as ort.Tensor;
      feeds[IO.pastValue(l)] = past.values[l] as ort.Tensor;
    }
    const out = await this.session.run(feeds);
    const logitsT = out[IO.logits] as ort.Tensor;
    const present: KvCache = { batch, length: total, keys: [], values: [] };
    for (let l = 0; l < this.kv.layers; l++) {
      present.keys.push(out[IO.presentKey(l)] as ort.Tensor);
      present.values.push(out[IO.presentValue(l)] as ort.Tensor);
    }
    return { logits: logitsT.data as Float32Array, kept: logitsT.dims[1] as number, present };
  }

  /**
   * Logits for token rows of any lengths, run as one left-padded batch with no cache.
   * Returns batch × maxLen × vocab (padding positions hold unspecified values), or
   * batch × vocab for the last token of each row with `lastOnly`.
   */
  async logits(inputIds: number[][], options: { lastOnly?: boolean } = {}): Promise<Float32Array> {
    if (inputIds.length === 0) return new Float32Array(0);
    this.checkIds(inputIds);
    const { ids, mask, positions } = leftPad(inputIds, this.tokenizer.padId);
    const r = await this.forward({
      inputIds: ids,
      attentionMask: mask,
      positionIds: positions,
      logitsToKeep: options.lastOnly ? 1 : 0,
    });
    return r.logits;
  }

  /**
   * Per choice: the summed log-probability of all its tokens given the prompt (the first token
   * included) and the per-token mean. Tokens follow the runner's `choiceTokenization`.
   * The prompt runs once; its KV cache is shared by all choices. A choice that tokenizes to no
   * tokens scores −Infinity.
   */
  async scoreContinuations(
    prompt: string,
    choices: string[],
    options: { tokenization?: ChoiceTokenization } = {},
  ): Promise<ContinuationScore[]> {
    const V = this.config.vocabSize;
    const rule = options.tokenization ?? this.choiceTokenization;
    const tokens = rule === "joined" ? continuationTokens : separateContinuationTokens;
    const { context, continuations } = tokens(this.tokenizer, prompt, choices);
    if (context.length === 0) {
      throw new MistralOnnxError(
        "scoreContinuations: the prompt tokenizes to no tokens and the tokenizer adds no BOS",
      );
    }
    this.checkIds([context, ...continuations]);
    const P = context.length;
    const pre = await this.forward({
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
        ...new Array<number>(L - r.length).fill(this.tokenizer.padId),
      ]);
      const mask = rows.map(() => new Array<number>(P + L).fill(1));
      const positions = rows.map(() => Array.from({ length: L }, (_, j) => P + j));
      const run = await this.forward({
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

  /**
   * Greedy generation for token rows (BOS included as the tokenizer adds it), batched with left
   * padding. Returns the new tokens per row, without the EOS that ended it.
   */
  async generateIds(
    prompts: number[][],
    options: { maxNewTokens?: number; stopWhen?: (row: number, newIds: number[]) => boolean } = {},
  ): Promise<number[][]> {
    const maxNew = options.maxNewTokens ?? 64;
    const V = this.config.vocabSize;
    const eos = new Set<number>(this.config.eosTokenIds);
    if (this.tokenizer.eosId !== undefined) eos.add(this.tokenizer.eosId);
    this.checkIds(prompts);
    const B = prompts.length;
    const out: number[][] = prompts.map(() => []);
    if (B === 0 || maxNew <= 0) return out;
    const done = new Array<boolean>(B).fill(false);
    const { ids, mask, positions } = leftPad(prompts, this.tokenizer.padId);
    const nextPos = prompts.map((p) => p.length);
    let r = await this.forward({
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
        next.push(done[b] ? this.tokenizer.padId : tok);
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
      r = await this.forward({
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

  /**
   * Greedy continuations of text prompts (special tokens skipped). Rows stop at EOS, after
   * maxNewTokens (default 64), or at the first stop string, which is cut off with what follows.
   * Prompts are sorted by length into batches so padding stays small; results keep input order.
   */
  async generate(prompts: string[], options: GenerateOptions = {}): Promise<string[]> {
    const stops = (options.stop ?? []).filter((s) => s.length > 0);
    const batchSize = Math.max(1, options.batchSize ?? 8);
    const encoded = prompts.map((p) => this.tokenizer.encode(p));
    const order = encoded
      .map((_, i) => i)
      .sort((a, b) => (encoded[a] as number[]).length - (encoded[b] as number[]).length || a - b);
    const texts = new Array<string>(prompts.length).fill("");
    const cut = (text: string) => {
      let end = text.length;
      for (const s of stops) {
        const at = text.indexOf(s);
        if (at >= 0 && at < end) end = at;
      }
      return text.slice(0, end);
    };
    for (let i = 0; i < order.length; i += batchSize) {
      const idx = order.slice(i, i + batchSize);
      const rows = idx.map((k) => encoded[k] as number[]);
      const ids = await this.generateIds(rows, {
        ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
        stopWhen: stops.length
          ? (_row, newIds) => {
              const text = this.tokenizer.decode(newIds, { skipSpecialTokens: true });
              return stops.some((s) => text.includes(s));
            }
          : undefined,
      });
      idx.forEach((k, b) => {
        texts[k] = cut(this.tokenizer.decode(ids[b] as number[], { skipSpecialTokens: true }));
      });
    }
    return texts;
  }

  private checkIds(rows: number[][]): void {
    const V = this.config.vocabSize;
    rows.forEach((r, i) => {
      for (const t of r) {
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new MistralOnnxError(
            `token id ${t} in row ${i} is outside the vocabulary [0, ${V})`,
          );
        }
      }
    });
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** onnxruntime's load failure as a MistralOnnxError naming the model file. */
function cannotLoad(onnxPath: string, cause: unknown): MistralOnnxError {
  return new MistralOnnxError(`${onnxPath}: cannot load ONNX model (${(cause as Error).message})`, {
    file: onnxPath,
  });
}

import * as ort from "onnxruntime-node";
import { MistralOnnxError } from "./errors.js";
import { IO } from "./graph.js";
import { emptyKvCache, type KvCache, type KvShape } from "./kv-cache.js";

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

/** A forward pass as the generation loop and the scorer see it. */
export type ForwardFn = (step: ForwardStep) => Promise<ForwardResult>;

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

/** Feeds one step to the session and collects logits and the grown cache. */
export async function runForward(
  session: ort.InferenceSession,
  kv: KvShape,
  step: ForwardStep,
): Promise<ForwardResult> {
  const batch = step.inputIds.length;
  const seq = step.inputIds[0]?.length ?? 0;
  const past = step.past ?? emptyKvCache(kv, batch);
  const total = past.length + seq;
  if (past.batch !== batch) {
    throw new MistralOnnxError(`forward: past cache has batch ${past.batch}, inputs have ${batch}`);
  }
  const T = ort.Tensor;
  const feeds: Record<string, ort.Tensor> = {
    [IO.inputIds]: new T("int64", toBigInt64(step.inputIds, seq), [batch, seq]),
    [IO.attentionMask]: new T("int64", toBigInt64(step.attentionMask, total), [batch, total]),
    [IO.positionIds]: new T("int64", toBigInt64(step.positionIds, seq), [batch, seq]),
    [IO.logitsToKeep]: new T("int64", BigInt64Array.from([BigInt(step.logitsToKeep ?? 0)]), []),
  };
  for (let l = 0; l < kv.layers; l++) {
    feeds[IO.pastKey(l)] = past.keys[l] as ort.Tensor;
    feeds[IO.pastValue(l)] = past.values[l] as ort.Tensor;
  }
  const out = await session.run(feeds);
  const logitsT = out[IO.logits] as ort.Tensor;
  const present: KvCache = { batch, length: total, keys: [], values: [] };
  for (let l = 0; l < kv.layers; l++) {
    present.keys.push(out[IO.presentKey(l)] as ort.Tensor);
    present.values.push(out[IO.presentValue(l)] as ort.Tensor);
  }
  const logits = logitsT.data as Float32Array;
  const kept = logitsT.dims[1] as number;
  const want = step.logitsToKeep ?? 0;
  // A graph exported for transformers.js has num_logits_to_keep fixed at 0 (all positions);
  // onnxruntime-node ignores the value fed for it, so keep the last rows here instead.
  if (want > 0 && kept > want)
    return { logits: lastRows(logits, batch, kept, want), kept: want, present };
  return { logits, kept, present };
}

/** The last `keep` of `kept` rows of each batch entry of a batch × kept × vocab array. */
function lastRows(logits: Float32Array, batch: number, kept: number, keep: number): Float32Array {
  const V = logits.length / (batch * kept);
  const out = new Float32Array(batch * keep * V);
  for (let b = 0; b < batch; b++)
    out.set(logits.subarray(((b + 1) * kept - keep) * V, (b + 1) * kept * V), b * keep * V);
  return out;
}

import * as ort from "onnxruntime-node";
import type { GreedyLoopFn } from "./generate.js";
import { GEN_IO } from "./onnx/greedy-loop.js";

function int64(rows: number[][]): BigInt64Array {
  const cols = rows[0]?.length ?? 0;
  const out = new BigInt64Array(rows.length * cols);
  rows.forEach((r, i) => {
    for (let j = 0; j < cols; j++) out[i * cols + j] = BigInt(r[j] as number);
  });
  return out;
}

/**
 * The greedy loop of a generate.onnx session: one session.run per batch. Only the prompt goes
 * in and the tokens [steps, batch] come out; the KV cache stays inside onnxruntime (on the GPU
 * under CUDA) for the whole decode.
 */
export function sessionGreedyLoop(session: ort.InferenceSession): GreedyLoopFn {
  return async ({ ids, mask, positions }, maxNew, eosIds, padId) => {
    const B = ids.length;
    const S = ids[0]?.length ?? 0;
    const T = ort.Tensor;
    // -1 never matches a token, so the EOS list is never empty (ReduceMax over nothing).
    const eos = [...eosIds, -1].map((x) => BigInt(x));
    const out = await session.run({
      [GEN_IO.inputIds]: new T("int64", int64(ids), [B, S]),
      [GEN_IO.attentionMask]: new T("int64", int64(mask), [B, S]),
      [GEN_IO.positionIds]: new T("int64", int64(positions), [B, S]),
      [GEN_IO.maxNewTokens]: new T("int64", BigInt64Array.from([BigInt(maxNew)]), []),
      [GEN_IO.eosTokenIds]: new T("int64", BigInt64Array.from(eos), [eos.length]),
      [GEN_IO.padTokenId]: new T("int64", BigInt64Array.from([BigInt(padId)]), []),
    });
    const t = out[GEN_IO.tokens] as ort.Tensor;
    const data = t.data as BigInt64Array;
    const steps = (t.dims[0] as number) ?? 0;
    const rows: number[][] = Array.from({ length: B }, () => []);
    for (let s = 0; s < steps; s++)
      for (let b = 0; b < B; b++) (rows[b] as number[]).push(Number(data[s * B + b]));
    return rows;
  };
}

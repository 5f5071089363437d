import * as ort from "onnxruntime-node";

export type KvElem = "float32" | "float16";

/** The per-layer key/value tensors of a batch, [batch, kvHeads, length, headDim] each. */
export interface KvCache {
  batch: number;
  length: number;
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  elem: KvElem;
}

export function emptyKvCache(shape: KvShape, batch: number): KvCache {
  const dims = [batch, shape.kvHeads, 0, shape.headDim];
  const make = () =>
    shape.elem === "float32"
      ? new ort.Tensor("float32", new Float32Array(0), dims)
      : new ort.Tensor("float16", new Uint16Array(0), dims);
  return {
    batch,
    length: 0,
    keys: Array.from({ length: shape.layers }, make),
    values: Array.from({ length: shape.layers }, make),
  };
}

/**
 * Frees a cache the caller no longer needs. Tensors that live on a GPU (WebGPU "gpu-buffer"
 * outputs) hold device memory until disposed; host tensors are left to the garbage collector.
 */
export function releaseKvCache(cache: KvCache): void {
  for (const t of [...cache.keys, ...cache.values]) {
    if (t.location !== "cpu") t.dispose();
  }
}

/**
 * Repeats a batch-1 cache `times` times along the batch axis. The runner no longer uses it for
 * scoring (issue 10: choices run one by one on the shared cache); the tests and
 * bench/score-memory.ts use it to reproduce the old tiled method.
 */
export function tileKvCache(cache: KvCache, times: number): KvCache {
  if (cache.batch !== 1) throw new Error("tileKvCache: expects a batch-1 cache");
  const tile = (t: ort.Tensor) => {
    const src = t.data as Float32Array | Uint16Array;
    const out = new (src.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(
      src.length * times,
    );
    for (let i = 0; i < times; i++) out.set(src, i * src.length);
    const dims = [times, ...t.dims.slice(1)];
    return t.type === "float32"
      ? new ort.Tensor("float32", out as Float32Array, dims)
      : new ort.Tensor("float16", out as Uint16Array, dims);
  };
  return {
    batch: times,
    length: cache.length,
    keys: cache.keys.map(tile),
    values: cache.values.map(tile),
  };
}

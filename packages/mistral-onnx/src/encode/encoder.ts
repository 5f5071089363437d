import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { toBytes } from "../graph/context.js";
import type { ModelDtype } from "../options.js";
import { type QuantizedWeight, quantizeBlockwise } from "../quantize.js";
import { transposeInto } from "../weights.js";
import { widenBf16Into } from "./kernels.js";
import { KernelPool } from "./pool.js";

/**
 * Turns a projection weight (out × in Float32, the checkpoint's layout) into the bytes the
 * graph stores: transposed for MatMul, or quantized for MatMulNBits. The inline encoder runs
 * on the calling thread; the pooled one spreads each tensor's rows over worker threads. Both
 * give the same bytes (test/build-threads.test.ts checks).
 */
export interface WeightEncoder {
  /** in × out, as the model dtype's bytes. `w` must not be changed until this resolves. */
  transposed(w: Float32Array, outF: number, inF: number, dtype: ModelDtype): Promise<Uint8Array>;
  /** quantizeBlockwise(w, n, k, bits, blockSize). */
  quantized(
    w: Float32Array,
    n: number,
    k: number,
    bits: 4 | 8,
    blockSize: number,
  ): Promise<QuantizedWeight>;
  /**
   * Reads a BF16 tensor of `n` values as Float32: `read` fills the raw bytes it is given. The
   * pooled encoder returns SharedArrayBuffer memory that its workers read without a copy.
   */
  readBf16AsF32(n: number, read: (target: Uint8Array) => Promise<unknown>): Promise<Float32Array>;
  /** Fresh Float32 memory of `n` values that this encoder's workers can read. */
  allocF32(n: number): Float32Array;
  close(): Promise<void>;
}

/** The single-thread path: exactly what a build did before worker threads. */
export const inlineEncoder: WeightEncoder = {
  async transposed(w, outF, inF, dtype) {
    const wT = new Float32Array(inF * outF);
    transposeInto(wT, outF, 0, w, outF, inF);
    return toBytes(wT, dtype);
  },
  async quantized(w, n, k, bits, blockSize) {
    return quantizeBlockwise(w, n, k, bits, blockSize);
  },
  async readBf16AsF32(n, read) {
    // Raw halves into the top half of the Float32 buffer, widened in place front to back:
    // writing element i (bytes 4i..4i+4) never reaches an unread half (bytes 2n+2j, j > i).
    const buffer = new ArrayBuffer(4 * n);
    await read(new Uint8Array(buffer, 2 * n, 2 * n));
    widenBf16Into(new Uint16Array(buffer, 2 * n, n), 0, n, new Uint32Array(buffer, 0, n));
    return new Float32Array(buffer, 0, n);
  },
  allocF32: (n) => new Float32Array(n),
  async close() {},
};

/**
 * V8 does not count SharedArrayBuffers as memory pressure, so a thread that allocates mostly
 * those (the build's main thread, with workers) would never collect the dead ones and keep
 * every tensor of the build. Collect after each COLLECT_EVERY bytes of them instead: the peak
 * stays near the tensors in flight plus this much. (The workers collect after each task.)
 */
const COLLECT_EVERY = 2 ** 30;
let sharedSinceCollect = 0;
let collect: (() => void) | undefined;

function sharedBuffer(byteLength: number): SharedArrayBuffer {
  sharedSinceCollect += byteLength;
  if (sharedSinceCollect >= COLLECT_EVERY) {
    sharedSinceCollect = 0;
    collect ??= exposedGc();
    collect();
  }
  return new SharedArrayBuffer(byteLength);
}

/** The engine's full garbage collection (node --expose-gc's gc, made available at run time). */
function exposedGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") return g;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** A Float32Array whose memory worker threads can read: `w` itself when already shared. */
export function sharedF32(w: Float32Array): Float32Array {
  if (w.buffer instanceof SharedArrayBuffer) return w;
  const s = new Float32Array(sharedBuffer(w.byteLength));
  s.set(w);
  return s;
}

export class PooledEncoder implements WeightEncoder {
  private readonly pool: KernelPool;

  constructor(threads: number) {
    this.pool = new KernelPool(threads);
  }

  async transposed(w: Float32Array, outF: number, inF: number, dtype: ModelDtype) {
    const src = sharedF32(w);
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    const toF16 = dtype === "fp16";
    const out = sharedBuffer(inF * outF * (toF16 ? 2 : 4));
    const dst = toF16 ? new Uint16Array(out) : new Float32Array(out);
    // Rows of the result are the input features.
    await this.pool.run("transposeRowsInto", [src, bits, outF, inF, dst, toF16], 4, inF);
    return new Uint8Array(out);
  }

  async quantized(w: Float32Array, n: number, k: number, bits: 4 | 8, blockSize: number) {
    const src = sharedF32(w);
    const kBlocks = Math.ceil(k / blockSize);
    const data = new Uint8Array(sharedBuffer(n * kBlocks * ((blockSize * bits) / 8)));
    const scales = new Float32Array(sharedBuffer(n * kBlocks * 4));
    await this.pool.run("quantizeRowsInto", [src, k, bits, blockSize, data, scales], 4, n);
    return { bits, blockSize, n, k, data, scales };
  }

  async readBf16AsF32(n: number, read: (target: Uint8Array) => Promise<unknown>) {
    // In parallel the in-place trick would race (a range overwrites halves another has yet to
    // read), so the halves get their own buffer.
    const halves = new Uint16Array(sharedBuffer(2 * n));
    await read(new Uint8Array(halves.buffer));
    const out = sharedBuffer(4 * n);
    await this.pool.run("widenBf16Into", [halves, new Uint32Array(out)], 1, n);
    return new Float32Array(out);
  }

  allocF32(n: number): Float32Array {
    return new Float32Array(sharedBuffer(4 * n));
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** The encoder for `threads` threads: inline for 1, a worker pool otherwise. */
export function weightEncoder(threads: number): WeightEncoder {
  return threads <= 1 ? inlineEncoder : new PooledEncoder(threads);
}

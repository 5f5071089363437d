/**
 * The heavy per-weight loops of a build, each over a range of output rows so several threads
 * can fill one tensor. Every function here must stay self-contained (no imports, no
 * module-level constants, only calls to each other): the worker pool (pool.ts) ships their
 * source text to worker threads, so the code the workers run is exactly this code.
 * They must write the same bytes as quantizeBlockwise and transposeInto + toBytes do.
 */

/**
 * Float32 bit pattern → binary16 bit pattern, round-to-nearest-even: the bits
 * @merge/tensor-io's f32ToF16 gives. Normal halves take the two-line fast path; the rest
 * (subnormal, overflow, Inf, NaN) the exact long path.
 */
export function f32BitsToF16(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const a = f & 0x7fffffff;
  // |x| in [2^-14, 65520): a normal half (values that round up to 65520 overflow below).
  if (a >= 0x38800000 && a < 0x477ff000) {
    // Rebias the exponent (127 → 15) and round the 13 dropped bits half to even; a carry out
    // of the mantissa bumps the exponent, as it should.
    return sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
  }
  const exp = a >>> 23;
  const mant = a & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7c00 | (mant >>> 13 || 1);
  if (a >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds past the largest half: ±Inf
  if (exp <= 101) return sign; // below half the smallest subnormal: ±0
  const full = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let m = full >>> shift;
  const rem = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (m & 1) === 1)) m += 1;
  return sign | m;
}

/**
 * Rows r0..r1 of quantizeBlockwise (quantize.ts documents the layout): w is n × k; data and
 * scales are the whole outputs.
 */
export function quantizeRowsInto(
  w: Float32Array,
  k: number,
  bits: number,
  blockSize: number,
  r0: number,
  r1: number,
  data: Uint8Array,
  scales: Float32Array,
): void {
  const kBlocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zp = 1 << (bits - 1);
  const qmax = (1 << bits) - 1;
  const levels = zp - 1;
  for (let r = r0; r < r1; r++) {
    const row = r * k;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = row + b * blockSize;
      const k1 = row + Math.min(k, b * blockSize + blockSize);
      let amax = 0;
      for (let i = k0; i < k1; i++) amax = Math.max(amax, Math.abs(w[i] as number));
      const scale = amax / levels;
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[r * kBlocks + b] = scale;
      let out = (r * kBlocks + b) * blobSize;
      if (bits === 8) {
        for (let i = k0; i < k1; i++)
          data[out++] = Math.max(0, Math.min(Math.round((w[i] as number) * inv) + zp, qmax));
        for (let i = k1 - k0; i < blockSize; i++) data[out++] = zp;
      } else {
        // Two codes a byte, low nibble first; past the row's end the code is the zero point.
        for (let i = k0; i < k0 + blockSize; i += 2) {
          const lo =
            i < k1 ? Math.max(0, Math.min(Math.round((w[i] as number) * inv) + zp, qmax)) : zp;
          const hi =
            i + 1 < k1
              ? Math.max(0, Math.min(Math.round((w[i + 1] as number) * inv) + zp, qmax))
              : zp;
          // NaN codes store as 0, as a Uint8Array store of NaN does.
          data[out++] = lo | 0 | ((hi | 0) << 4);
        }
      }
    }
  }
}

/**
 * Rows c0..c1 of the transpose of src (rows × cols), i.e. dst[c, r] = src[r, c], dst being
 * cols × rows. dst is Float32Array (fp32 models) or Uint16Array of binary16 bits (fp16; then
 * srcBits is src's bit view). Blocked so both sides stay in cache.
 */
export function transposeRowsInto(
  src: Float32Array,
  srcBits: Uint32Array,
  rows: number,
  cols: number,
  c0: number,
  c1: number,
  dst: Float32Array | Uint16Array,
  toF16: boolean,
): void {
  const BS = 32;
  for (let rb = 0; rb < rows; rb += BS) {
    const re = Math.min(rows, rb + BS);
    for (let cb = c0; cb < c1; cb += BS) {
      const ce = Math.min(c1, cb + BS);
      for (let c = cb; c < ce; c++) {
        const d = c * rows;
        if (toF16)
          for (let r = rb; r < re; r++) dst[d + r] = f32BitsToF16(srcBits[r * cols + c] as number);
        else for (let r = rb; r < re; r++) dst[d + r] = src[r * cols + c] as number;
      }
    }
  }
}

/** Elements i0..i1 of BF16 → Float32: the BF16 bits are the top half of the Float32 bits. */
export function widenBf16Into(halves: Uint16Array, i0: number, i1: number, out: Uint32Array): void {
  for (let i = i0; i < i1; i++) out[i] = (halves[i] as number) << 16;
}

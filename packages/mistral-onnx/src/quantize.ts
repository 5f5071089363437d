/**
 * Block-wise symmetric weight-only quantization in the layout of onnxruntime's
 * com.microsoft.MatMulNBits: W is N × K (out × in, the checkpoint's layout); each row is cut into
 * blocks of `blockSize` along K; each block stores unsigned codes q with the default zero point
 * 2^(bits−1) and one float scale, w ≈ (q − zp) · scale. 4-bit codes pack two per byte, low nibble
 * first. The last block of a row is zero-padded.
 */
export interface QuantizedWeight {
  bits: 4 | 8;
  blockSize: number;
  n: number;
  k: number;
  /** N × kBlocks × blobSize bytes. */
  data: Uint8Array;
  /** N × kBlocks scales. */
  scales: Float32Array;
}

export function quantizeBlockwise(
  w: Float32Array,
  n: number,
  k: number,
  bits: 4 | 8,
  blockSize: number,
): QuantizedWeight {
  const kBlocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const data = new Uint8Array(n * kBlocks * blobSize);
  const scales = new Float32Array(n * kBlocks);
  const zp = 1 << (bits - 1);
  const qmax = (1 << bits) - 1;
  // Symmetric: the largest magnitude maps to ±(zp − 1) so both signs fit (e.g. ±7 for 4 bits).
  const levels = zp - 1;
  const codes = new Uint8Array(blockSize);
  for (let r = 0; r < n; r++) {
    const row = r * k;
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(k, k0 + blockSize);
      let amax = 0;
      for (let i = k0; i < k1; i++) amax = Math.max(amax, Math.abs(w[row + i] as number));
      const scale = amax / levels;
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[r * kBlocks + b] = scale;
      codes.fill(zp);
      for (let i = k0; i < k1; i++) {
        const q = Math.round((w[row + i] as number) * inv) + zp;
        codes[i - k0] = Math.max(0, Math.min(q, qmax));
      }
      const out = (r * kBlocks + b) * blobSize;
      if (bits === 8) data.set(codes, out);
      else
        for (let j = 0; j < blobSize; j++)
          data[out + j] = (codes[2 * j] as number) | ((codes[2 * j + 1] as number) << 4);
    }
  }
  return { bits, blockSize, n, k, data, scales };
}

/** The float weights a QuantizedWeight stands for (N × K); used by tests to bound the error. */
export function dequantizeBlockwise(q: QuantizedWeight): Float32Array {
  const { n, k, bits, blockSize } = q;
  const kBlocks = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zp = 1 << (bits - 1);
  const w = new Float32Array(n * k);
  for (let r = 0; r < n; r++)
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / blockSize);
      const j = i - b * blockSize;
      const byte = q.data[(r * kBlocks + b) * blobSize + (bits === 8 ? j : j >> 1)] as number;
      const code = bits === 8 ? byte : j & 1 ? byte >> 4 : byte & 15;
      w[r * k + i] = (code - zp) * (q.scales[r * kBlocks + b] as number);
    }
  return w;
}

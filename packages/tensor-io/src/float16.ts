/**
 * Bit-level conversions between Float32 and the two 16-bit float formats (IEEE binary16 "F16"
 * and bfloat16 "BF16"). They work on the integer bit patterns, never on JS numbers, so NaN
 * payloads survive and no double rounding happens. Rounding is round-to-nearest-even, the
 * IEEE default that numpy and PyTorch use.
 *
 * NaN policy: F32→F16 keeps the sign and the top 10 payload bits (forced non-zero), as numpy
 * does; F32→BF16 keeps the sign and top 7 payload bits and sets the quiet bit (PyTorch would
 * return the canonical 0x7FC0 instead; both are NaN).
 */
import { endianness } from "node:os";
import type { DType } from "./dtypes.js";

// All typed-array views below use host byte order; safetensors is little-endian.
if (endianness() !== "LE") {
  throw new Error(
    "@merge/tensor-io requires a little-endian host (safetensors data is little-endian)",
  );
}

/** Float32 bit pattern → binary16 bit pattern, round-to-nearest-even. */
export function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // ±Inf
    return sign | 0x7c00 | (mant >>> 13 || 1); // NaN: keep payload top bits, never turn into Inf
  }
  const halfExp = exp - 127 + 15;
  if (halfExp >= 0x1f) return sign | 0x7c00; // too large: overflow to ±Inf
  if (halfExp <= 0) {
    // Result is a binary16 subnormal (or zero): value = m · 2^-24.
    // An F32 with exp ≤ 101 is below half the smallest subnormal and rounds to ±0
    // (this also covers F32 subnormals, exp = 0).
    if (exp <= 101) return sign;
    const full = mant | 0x800000; // explicit leading bit
    const shift = 126 - exp; // 14..24
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1) === 1)) m += 1; // may carry into the smallest normal
    return sign | m;
  }
  let h = (halfExp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches Inf at the top).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

/** Float32 bit pattern → bfloat16 bit pattern, round-to-nearest-even. */
export function f32BitsToBf16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) {
    return ((f >>> 16) | 0x0040) & 0xffff; // NaN: quiet it so truncation can't make it Inf
  }
  // Adding 0x7fff (+1 when the kept lsb is odd) rounds half to even; a carry bumps the exponent.
  const rounded = (f >>> 0) + 0x7fff + ((f >>> 16) & 1);
  return Math.floor(rounded / 0x10000) & 0xffff;
}

/** binary16 bit pattern → Float32 bit pattern (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // Inf / NaN with payload
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal: normalise the mantissa.
  let e = 127 - 15 + 1;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e -= 1;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | undefined;
function f16ToF32Table(): Uint32Array {
  if (f16Table === undefined) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

export function f32ToBf16(x: Float32Array): Uint16Array {
  const bits = bitsOf(x);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!);
  return out;
}

export function bf16ToF32(x: Uint16Array): Float32Array {
  const out = new Float32Array(x.length);
  const bits = bitsOf(out);
  for (let i = 0; i < x.length; i++) bits[i] = x[i]! << 16;
  return out;
}

export function f32ToF16(x: Float32Array): Uint16Array {
  const bits = bitsOf(x);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

export function f16ToF32(x: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(x.length);
  const bits = bitsOf(out);
  for (let i = 0; i < x.length; i++) bits[i] = table[x[i]!]!;
  return out;
}

/**
 * Widens `n` 16-bit values stored in the upper half of `buffer` (bytes [2n, 4n)) into `n`
 * Float32 values over the whole buffer, in place. A forward pass is safe: writing element i
 * touches bytes [4i, 4i+4), which never reach input elements j > i at [2n+2j, 2n+2j+2).
 * Lets a reader decode a 16-bit tensor with one allocation instead of two.
 */
export function widenHalfInPlace(
  buffer: ArrayBuffer,
  n: number,
  dtype: "F16" | "BF16",
): Float32Array {
  const input = new Uint16Array(buffer, 2 * n, n);
  const out = new Uint32Array(buffer, 0, n);
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) out[i] = input[i]! << 16;
  } else {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[input[i]!]!;
  }
  return new Float32Array(buffer, 0, n);
}

/** A typed-array view of `bytes` when aligned, else a view of an aligned copy. */
function alignedView<T>(
  bytes: Uint8Array,
  elementSize: number,
  make: (buffer: ArrayBufferLike, offset: number, length: number) => T,
): T {
  const length = bytes.byteLength / elementSize;
  if (bytes.byteOffset % elementSize === 0) return make(bytes.buffer, bytes.byteOffset, length);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return make(copy.buffer, 0, length);
}

function checkLength(bytes: Uint8Array, elementSize: number, dtype: DType): void {
  if (bytes.byteLength % elementSize !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
}

/**
 * Decode raw little-endian bytes of a float dtype (F64/F32/F16/BF16) to a new Float32Array.
 * F64 values are rounded to the nearest Float32.
 */
export function decodeToF32(bytes: Uint8Array, dtype: DType): Float32Array {
  switch (dtype) {
    case "F32": {
      checkLength(bytes, 4, dtype);
      const out = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    case "F16":
      checkLength(bytes, 2, dtype);
      return f16ToF32(alignedView(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case "BF16":
      checkLength(bytes, 2, dtype);
      return bf16ToF32(alignedView(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case "F64":
      checkLength(bytes, 8, dtype);
      return Float32Array.from(alignedView(bytes, 8, (b, o, n) => new Float64Array(b, o, n)));
    default:
      throw new TypeError(`cannot decode dtype ${dtype} to F32 (only F64, F32, F16, BF16)`);
  }
}

/**
 * Decode without copying when possible: an aligned F32 buffer is returned as a view. Used by
 * readers that own freshly read bytes.
 */
export function decodeOwnedToF32(bytes: Uint8Array, dtype: DType): Float32Array {
  if (dtype === "F32" && bytes.byteOffset % 4 === 0 && bytes.byteLength % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  return decodeToF32(bytes, dtype);
}

/** Encode Float32 values as raw little-endian bytes of F32/F16/BF16 (a new buffer). */
export function encodeFromF32(x: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  switch (dtype) {
    case "F32": {
      const out = new Uint8Array(x.byteLength);
      out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      return out;
    }
    case "F16": {
      const h = f32ToF16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case "BF16": {
      const h = f32ToBf16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    default:
      throw new TypeError(`cannot encode F32 as ${String(dtype)} (only F32, F16, BF16)`);
  }
}

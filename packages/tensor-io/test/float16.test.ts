import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  bf16ToF32,
  decodeToF32,
  encodeFromF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
} from "../src/index.js";
import { FIXTURES, readGzip, readJson, sha256 } from "./helpers.js";

const REF = join(FIXTURES, "float16");

const ALL_PATTERNS = Uint16Array.from({ length: 65536 }, (_, i) => i);

function u32(bytes: Uint8Array): Uint32Array {
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}
function u16(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}
function bitsOfF32(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}
const isF32NaN = (b: number) => (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;
const isF16NaN = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
const isBf16NaN = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;

/** First index where `actual` differs from `expected`, NaN compared as a class. */
function firstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  isNaNBits: (b: number) => boolean,
): number {
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (isNaNBits(e) ? !isNaNBits(a) : a !== e) return i;
  }
  return -1;
}

/** The documented F32 input set of tools/fixtures/tensor-io/make_fixtures.py. */
async function f32Inputs(): Promise<Float32Array> {
  const { f32_input_lows: lows, f32_inputs_sha256: expectedSha } = await readJson<{
    f32_input_lows: number[];
    f32_inputs_sha256: string;
  }>(join(REF, "inputs.json"));
  const bits = new Uint32Array(65536 * lows.length);
  let i = 0;
  for (let k = 0; k < 65536; k++) for (const low of lows) bits[i++] = ((k << 16) | low) >>> 0;
  expect(sha256(bits)).toBe(expectedSha); // same inputs numpy/torch converted
  return new Float32Array(bits.buffer);
}

describe("16-bit floats, exhaustive against numpy (F16) and torch (BF16)", () => {
  it("F16 → F32 matches numpy for all 65536 patterns", async () => {
    const expected = u32(await readGzip(join(REF, "f16_to_f32.u32.gz")));
    const actual = bitsOfF32(f16ToF32(ALL_PATTERNS));
    expect(firstMismatch(actual, expected, isF32NaN)).toBe(-1);
    // NaN payloads are kept exactly in this direction.
    expect(Array.from(actual)).toEqual(Array.from(expected));
  });

  it("F16 → F32 matches the IEEE formula evaluated in float64 + Math.fround", () => {
    const actual = f16ToF32(ALL_PATTERNS);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const mant = h & 0x3ff;
      const value =
        exp === 0x1f
          ? mant === 0
            ? sign * Number.POSITIVE_INFINITY
            : Number.NaN
          : exp === 0
            ? sign * mant * 2 ** -24
            : sign * (1 + mant / 1024) * 2 ** (exp - 15);
      const got = actual[h]!;
      if (Number.isNaN(value)) expect(Number.isNaN(got)).toBe(true);
      else if (!Object.is(got, Math.fround(value)))
        expect.fail(`pattern 0x${h.toString(16)}: ${got} ≠ ${value}`);
    }
  });

  it("BF16 → F32 matches torch for all 65536 patterns", async () => {
    const expected = u32(await readGzip(join(REF, "bf16_to_f32.u32.gz")));
    expect(firstMismatch(bitsOfF32(bf16ToF32(ALL_PATTERNS)), expected, isF32NaN)).toBe(-1);
  });

  it("F32 → F16 rounds to nearest even like numpy on every exponent and tie", async () => {
    const inputs = await f32Inputs();
    const expected = u16(await readGzip(join(REF, "f32_to_f16.u16.gz")));
    const actual = f32ToF16(inputs);
    const i = firstMismatch(actual, expected, isF16NaN);
    if (i >= 0) {
      expect.fail(
        `input 0x${bitsOfF32(inputs)[i]!.toString(16)}: got 0x${actual[i]!.toString(16)}, numpy 0x${expected[i]!.toString(16)}`,
      );
    }
  });

  it("F32 → BF16 rounds to nearest even like torch on every exponent and tie", async () => {
    const inputs = await f32Inputs();
    const expected = u16(await readGzip(join(REF, "f32_to_bf16.u16.gz")));
    const actual = f32ToBf16(inputs);
    const i = firstMismatch(actual, expected, isBf16NaN);
    if (i >= 0) {
      expect.fail(
        `input 0x${bitsOfF32(inputs)[i]!.toString(16)}: got 0x${actual[i]!.toString(16)}, torch 0x${expected[i]!.toString(16)}`,
      );
    }
  });

  it("16 → 32 → 16 is the identity for every non-NaN pattern, and NaN stays NaN", () => {
    const viaF16 = f32ToF16(f16ToF32(ALL_PATTERNS));
    const viaBf16 = f32ToBf16(bf16ToF32(ALL_PATTERNS));
    expect(firstMismatch(viaF16, ALL_PATTERNS, isF16NaN)).toBe(-1);
    expect(firstMismatch(viaBf16, ALL_PATTERNS, isBf16NaN)).toBe(-1);
  });
});

describe("decodeToF32 / encodeFromF32", () => {
  const values = Float32Array.from([0, -0, 1.5, -3.25, 65504, 1e-7, Number.POSITIVE_INFINITY]);

  it("round-trips F32 bytes exactly", () => {
    const bytes = encodeFromF32(values, "F32");
    expect(Array.from(decodeToF32(bytes, "F32"))).toEqual(Array.from(values));
  });

  it("encodes F16/BF16 as the same bits as the array converters", () => {
    expect(Array.from(u16(encodeFromF32(values, "F16")))).toEqual(Array.from(f32ToF16(values)));
    expect(Array.from(u16(encodeFromF32(values, "BF16")))).toEqual(Array.from(f32ToBf16(values)));
  });

  it("decodes unaligned input by copying", () => {
    const bytes = encodeFromF32(values, "F16");
    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    const view = shifted.subarray(1);
    expect(Array.from(decodeToF32(view, "F16"))).toEqual(Array.from(f16ToF32(f32ToF16(values))));
  });

  it("decodes F64 by rounding to the nearest F32", () => {
    const f64 = Float64Array.from([1 / 3, -1e300, 2 ** -200]);
    const got = decodeToF32(new Uint8Array(f64.buffer), "F64");
    expect(Array.from(got)).toEqual(Array.from(f64, Math.fround));
  });

  it("rejects non-float dtypes and ragged byte counts", () => {
    expect(() => decodeToF32(new Uint8Array(4), "I32")).toThrow(/cannot decode dtype I32/);
    expect(() => decodeToF32(new Uint8Array(3), "F16")).toThrow(/whole number/);
  });
});

import { describe, expect, it } from "vitest";
import { Rng } from "@merge/lora";
import { kthLargest, radixSelectAbs, topKBits, unpackBits } from "../src/select.js";
import { randomExpert } from "./helpers.js";

describe("kthLargest", () => {
  const rng = new Rng(4);
  it("agrees with sorting, with and without duplicates", () => {
    for (const dup of [false, true]) {
      const values = Float32Array.from({ length: 1001 }, () =>
        dup ? Math.floor(rng.nextFloat() * 7) : rng.nextFloat(),
      );
      const sorted = Array.from(values).sort((a, b) => b - a);
      for (const k of [1, 2, 17, 500, 1000, 1001])
        expect(kthLargest(values.slice(), k)).toBe(sorted[k - 1]);
    }
  });
});

function keepMask(bits: Uint32Array | null, count: number): Uint8Array {
  const out = new Uint8Array(count).fill(1);
  if (bits !== null) unpackBits(bits, 0, count, out);
  return out;
}

describe("radixSelectAbs", () => {
  const rng = new Rng(8);
  it("finds the k-th largest magnitude and the tie quota, as sorting does", () => {
    for (const dup of [false, true]) {
      const values = Float32Array.from({ length: 3001 }, () =>
        dup
          ? Math.floor(rng.nextFloat() * 9) - 4
          : (rng.nextFloat() - 0.5) * 10 ** (rng.nextFloat() * 8 - 4),
      );
      values[5] = -0;
      const mags = Array.from(values, Math.abs).sort((a, b) => b - a);
      for (const k of [1, 2, 100, 1500, 3000, 3001]) {
        const { key, ties } = radixSelectAbs(new Uint32Array(values.slice().buffer), k);
        const t = new Float32Array(new Uint32Array([key]).buffer)[0]!;
        expect(t).toBe(mags[k - 1]);
        expect(ties).toBe(k - mags.filter((x) => x > t).length);
      }
    }
  });
});

describe("topKBits", () => {
  it("keeps exactly ⌊density·numel⌋ entries, ties broken in row-major order", () => {
    // Rank-1 ΔW = b·aᵀ with repeated magnitudes, so the threshold falls inside a tie.
    const e = {
      A: Float32Array.from([1, -1, 2, 2, 1, -1]),
      B: Float32Array.from([1, -1, 1, 1]),
      rank: 1,
      inFeatures: 6,
      outFeatures: 4,
      scale: 1,
    };
    const keep = keepMask(topKBits(e, 0.5), 24); // 12 of 24: the 8 entries of magnitude 2 and 4 of the 16 ones
    const block = new Float32Array([
      1, -1, 2, 2, 1, -1, -1, 1, -2, -2, -1, 1, 1, -1, 2, 2, 1, -1, 1, -1, 2, 2, 1, -1,
    ]);
    block.forEach((_, i) => {
      if (keep[i] === 0) block[i] = 0;
    });
    expect(block.filter((x) => x !== 0).length).toBe(12);
    // The four ones kept are the first ones in row-major order: all of row 0.
    expect(Array.from(block.subarray(0, 12))).toEqual([1, -1, 2, 2, 1, -1, 0, 0, -2, -2, 0, 0]);
  });
  it("density 0 keeps nothing and density 1 keeps everything", () => {
    const e = randomExpert(new Rng(1), 5, 7, 2);
    expect(keepMask(topKBits(e, 0), 35).every((x) => x === 0)).toBe(true);
    expect(topKBits(e, 1)).toBeNull();
    // Bitsets spanning several 32-bit words keep exactly ⌊density·numel⌋ entries.
    const big = randomExpert(new Rng(2), 13, 11, 3);
    expect(keepMask(topKBits(big, 0.37), 143).reduce((s, x) => s + x, 0)).toBe(
      Math.floor(0.37 * 143),
    );
  });
});

import { describe, expect, it } from "vitest";
import { Rng } from "@merge/lora";
import { kthLargest, TopKMask, topKSelection } from "../src/select.js";
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

describe("topKSelection", () => {
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
    const sel = topKSelection(e, 0.5); // 12 of 24: the 8 entries of magnitude 2 and 4 of the 16 ones
    const block = new Float32Array([
      1, -1, 2, 2, 1, -1, -1, 1, -2, -2, -1, 1, 1, -1, 2, 2, 1, -1, 1, -1, 2, 2, 1, -1,
    ]);
    new TopKMask(sel).apply(block, block.length);
    expect(block.filter((x) => x !== 0).length).toBe(12);
    // The four ones kept are the first ones in row-major order: all of row 0.
    expect(Array.from(block.subarray(0, 12))).toEqual([1, -1, 2, 2, 1, -1, 0, 0, -2, -2, 0, 0]);
  });
  it("density 0 keeps nothing and density 1 keeps everything", () => {
    const e = randomExpert(new Rng(1), 5, 7, 2);
    const block = new Float32Array(35).fill(3);
    new TopKMask(topKSelection(e, 0)).apply(block, 35);
    expect(block.every((x) => x === 0)).toBe(true);
    block.fill(3);
    new TopKMask(topKSelection(e, 1)).apply(block, 35);
    expect(block.every((x) => x === 3)).toBe(true);
  });
});

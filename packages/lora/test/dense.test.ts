import { describe, expect, it } from "vitest";
import { DeltaRowReader, denseDelta, Rng } from "../src/index.js";
import { naiveMul, randomMatrix, relErr } from "./helpers.js";

describe("denseDelta", () => {
  const rng = new Rng(7);
  const m = {
    A: randomMatrix(rng, 5, 33),
    B: randomMatrix(rng, 17, 5),
    rank: 5,
    inFeatures: 33,
    outFeatures: 17,
    scale: 0.75,
  };
  const expected = naiveMul(m.B, m.A, 17, 5, 33).map((x) => x * 0.75);

  it("equals scale·B·A", () => {
    expect(relErr(denseDelta(m), expected)).toBeLessThan(1e-7);
  });

  it("row blocks concatenate to the whole matrix", () => {
    const reader = new DeltaRowReader(m);
    const parts: number[] = [];
    for (const [a, b] of [
      [0, 4],
      [4, 5],
      [5, 17],
    ] as const)
      parts.push(...reader.read(a, b));
    expect(relErr(parts, expected)).toBeLessThan(1e-7);
    expect(Array.from(denseDelta(m, 4, 9))).toEqual(parts.slice(4 * 33, 9 * 33));
  });

  it("ranks above one 16-column panel (37) are exact too", () => {
    const big = {
      A: randomMatrix(rng, 37, 21),
      B: randomMatrix(rng, 9, 37),
      rank: 37,
      inFeatures: 21,
      outFeatures: 9,
      scale: 2,
    };
    const ref = naiveMul(big.B, big.A, 9, 37, 21).map((x) => x * 2);
    expect(relErr(denseDelta(big), ref)).toBeLessThan(1e-7);
    expect(relErr(denseDelta(big, 3, 8), ref.subarray(3 * 21, 8 * 21))).toBeLessThan(1e-7);
  });

  it("readMasked computes exactly the kept entries", () => {
    for (const e of [
      m,
      {
        A: randomMatrix(rng, 20, 33),
        B: randomMatrix(rng, 17, 20),
        rank: 20,
        inFeatures: 33,
        outFeatures: 17,
        scale: 1,
      },
    ]) {
      const reader = new DeltaRowReader(e);
      const keep = Uint8Array.from({ length: 12 * 33 }, () => (rng.nextFloat() < 0.3 ? 1 : 0));
      const got = reader.readMasked(2, 14, keep, new Float32Array(12 * 33));
      const full = reader.read(2, 14);
      full.forEach((x, i) => {
        expect(got[i]).toBe(keep[i] === 1 ? x : 0);
      });
    }
  });

  it("rank 0 gives zeros", () => {
    const z = denseDelta({
      A: new Float32Array(0),
      B: new Float32Array(0),
      rank: 0,
      inFeatures: 3,
      outFeatures: 2,
      scale: 1,
    });
    expect(Array.from(z)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

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

import { describe, expect, it } from "vitest";
import {
  deriveSeed,
  randomizedSvd,
  relativeErrorToDense,
  Rng,
  svdToLowRank,
} from "../src/index.js";
import { naiveMul, randomMatrix, relErr } from "./helpers.js";

describe("Rng", () => {
  it("is deterministic per seed and differs across seeds", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
  });
  it("uniform floats have mean ≈ 1/2 and Gaussians variance ≈ 1", () => {
    const r = new Rng(1);
    let s = 0;
    let g2 = 0;
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      s += r.nextFloat();
      g2 += r.nextGaussian() ** 2;
    }
    expect(Math.abs(s / n - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(g2 / n - 1)).toBeLessThan(0.02);
  });
  it("deriveSeed separates labels", () => {
    expect(deriveSeed(1, "m", 0)).not.toBe(deriveSeed(1, "m", 1));
    expect(deriveSeed(1, "ab", "c")).not.toBe(deriveSeed(1, "a", "bc"));
    expect(deriveSeed(1, "m", 0)).toBe(deriveSeed(1, "m", 0));
  });
});

describe("randomizedSvd", () => {
  const rng = new Rng(9);
  it("is exact when k + oversample covers the smaller dimension", () => {
    const d = randomMatrix(rng, 24, 40);
    const svd = randomizedSvd(d, 24, 40, 20, { oversample: 10 });
    const lr = svdToLowRank(svd);
    expect(relErr(naiveMul(lr.B, lr.A, 24, lr.rank, 40), d)).toBeLessThan(0.3); // rank 20 of 24
    const full = svdToLowRank(randomizedSvd(d, 24, 40, 24));
    expect(relErr(naiveMul(full.B, full.A, 24, 24, 40), d)).toBeLessThan(1e-6);
  });
  it("recovers a low-rank matrix and reports its error exactly", () => {
    const b = randomMatrix(rng, 200, 5);
    const a = randomMatrix(rng, 5, 150);
    const d = Float32Array.from(naiveMul(b, a, 200, 5, 150));
    const lr = svdToLowRank(randomizedSvd(d, 200, 150, 5, { seed: 3 }));
    expect(relativeErrorToDense(d, lr)).toBeLessThan(1e-6);
    const lr3 = svdToLowRank(randomizedSvd(d, 200, 150, 3, { seed: 3 }));
    const measured = relErr(naiveMul(lr3.B, lr3.A, 200, 3, 150), d);
    expect(relativeErrorToDense(d, lr3)).toBeCloseTo(measured, 6);
    expect(measured).toBeGreaterThan(0.05);
  });
});

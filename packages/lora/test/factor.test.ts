import type { LoraFixture } from "./fixture-types.js";
import { describe, expect, it } from "vitest";
import {
  chooseRank,
  concatenate,
  denseDelta,
  type LoraModule,
  LoraError,
  lowRankSvd,
  Rng,
  svdToLowRank,
  truncateSvd,
  truncationError,
} from "../src/index.js";
import { fixture, naiveMul, orthonormalityError, randomMatrix, relErr } from "./helpers.js";

const lora = fixture<LoraFixture>("lora.json");
const rng = new Rng(3);

function module(out: number, inF: number, rank: number, scale: number): LoraModule {
  return {
    A: randomMatrix(rng, rank, inF),
    B: randomMatrix(rng, out, rank),
    rank,
    inFeatures: inF,
    outFeatures: out,
    scale,
  };
}

describe("lowRankSvd", () => {
  const f = lora.lowRank;
  const svd = lowRankSvd({
    A: Float32Array.from(f.A),
    B: Float32Array.from(f.B),
    rank: f.rank,
    outFeatures: f.out,
    inFeatures: f.in,
  });

  // The fixture stores 9 significant digits, hence 1e-8.
  it("singular values match torch.linalg.svdvals of the dense product", () => {
    expect(relErr(svd.S, f.singularValues)).toBeLessThan(1e-8);
  });

  it("U S Vᵀ reconstructs B·A with orthonormal U and V", () => {
    expect(orthonormalityError(svd.U, f.out, svd.rank)).toBeLessThan(1e-12);
    expect(orthonormalityError(svd.V, f.in, svd.rank)).toBeLessThan(1e-12);
    const lr = svdToLowRank(svd);
    expect(relErr(naiveMul(lr.B, lr.A, f.out, lr.rank, f.in), f.dense)).toBeLessThan(1e-6);
  });

  it("truncation error equals the measured error of the truncated product", () => {
    for (const k of [0, 2, 4, 6]) {
      const t = svdToLowRank(truncateSvd(svd, k));
      const measured = relErr(naiveMul(t.B, t.A, f.out, k, f.in), f.dense);
      expect(Math.abs(measured - truncationError(svd.S, k))).toBeLessThan(1e-6);
    }
  });

  it("rank exceeding both dimensions still works (wide factors)", () => {
    const m = module(5, 4, 9, 1);
    const s = lowRankSvd(m);
    expect(s.rank).toBe(4);
    const lr = svdToLowRank(s);
    expect(relErr(naiveMul(lr.B, lr.A, 5, 4, 4), denseDelta(m))).toBeLessThan(1e-6);
  });
});

describe("concatenate", () => {
  it("equals the weighted sum of dense deltas (heterogeneous ranks, a missing expert)", () => {
    const experts = [module(24, 40, 2, 2), null, module(24, 40, 4, 0.5), module(24, 40, 3, 1.2)];
    const w = [0.7, 5, 1.3, -0.4];
    const cat = concatenate(experts, { outFeatures: 24, inFeatures: 40, weights: w });
    expect(cat.rank).toBe(9);
    const expected = new Float64Array(24 * 40);
    experts.forEach((e, i) => {
      if (e)
        denseDelta(e).forEach((x, j) => {
          expected[j]! += w[i]! * x;
        });
    });
    expect(relErr(naiveMul(cat.B, cat.A, 24, 9, 40), expected)).toBeLessThan(1e-6);
  });

  it("rejects experts of the wrong shape and weight counts", () => {
    expect(() =>
      concatenate([module(4, 5, 1, 1)], { outFeatures: 4, inFeatures: 6, module: "m" }),
    ).toThrow(/expected 4×6/);
    expect(() => concatenate([null], { outFeatures: 4, inFeatures: 6, weights: [1, 2] })).toThrow(
      LoraError,
    );
  });

  it("no experts: rank 0", () => {
    const cat = concatenate([null, null], { outFeatures: 3, inFeatures: 2 });
    expect(cat.rank).toBe(0);
    expect(lowRankSvd(cat).rank).toBe(0);
  });
});

describe("chooseRank", () => {
  const S = [4, 3, 2, 1, 0];
  it("caps at rank and drops zero components", () => {
    expect(chooseRank(S)).toBe(4);
    expect(chooseRank(S, { rank: 2 })).toBe(2);
  });
  it("keeps the fewest components reaching the energy fraction", () => {
    // energies 16, 9, 4, 1 of 30: 16/30 = 0.53, 25/30 = 0.83, 29/30 = 0.97
    expect(chooseRank(S, { energy: 0.5 })).toBe(1);
    expect(chooseRank(S, { energy: 0.8 })).toBe(2);
    expect(chooseRank(S, { energy: 0.9 })).toBe(3);
    expect(() => chooseRank(S, { energy: 1.5 })).toThrow(LoraError);
  });
});

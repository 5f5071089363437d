import { describe, expect, it } from "vitest";
import {
  chooseRank,
  LoraError,
  type LoraModule,
  principalAngles,
  Rng,
  subspaceOverlap,
  validateLoraModule,
} from "../src/index.js";
import { randomMatrix } from "./helpers.js";

function mod(): LoraModule {
  const rng = new Rng(21);
  return {
    A: randomMatrix(rng, 2, 5),
    B: randomMatrix(rng, 4, 2),
    rank: 2,
    inFeatures: 5,
    outFeatures: 4,
    scale: 1,
  };
}

function poisoned(factor: "A" | "B", index: number, value: number): LoraModule {
  const m = mod();
  const f = Float32Array.from(m[factor]);
  f[index] = value;
  return { ...m, [factor]: f };
}

describe("non-finite values are rejected, never merged to zero", () => {
  it("validateLoraModule names the factor, row and column", () => {
    expect(() => validateLoraModule(mod(), "q_proj")).not.toThrow();
    // A is 2 × 5: index 7 is row 1, column 2.
    expect(() => validateLoraModule(poisoned("A", 7, Number.NaN), "q_proj")).toThrow(
      /q_proj: A has non-finite value NaN at row 1, column 2/,
    );
    // B is 4 × 2: index 5 is row 2, column 1.
    expect(() => validateLoraModule(poisoned("B", 5, Number.POSITIVE_INFINITY))).toThrow(
      /B has non-finite value Infinity at row 2, column 1/,
    );
    expect(() => validateLoraModule(poisoned("B", 0, Number.NEGATIVE_INFINITY))).toThrow(LoraError);
  });

  it("chooseRank throws on NaN or Inf singular values", () => {
    expect(chooseRank([3, 2, 0])).toBe(2);
    expect(() => chooseRank([Number.NaN, 1])).toThrow(LoraError);
    expect(() => chooseRank([2, Number.NaN], { energy: 0.5 })).toThrow(/singular value 1 is NaN/);
    expect(() => chooseRank([Number.POSITIVE_INFINITY])).toThrow(LoraError);
  });

  it("subspaceOverlap and principalAngles throw on NaN bases", () => {
    expect(() => subspaceOverlap(poisoned("B", 3, Number.NaN), mod())).toThrow(LoraError);
    expect(() => subspaceOverlap(mod(), poisoned("A", 1, Number.NaN), "input")).toThrow(LoraError);
    const x = new Float64Array([1, Number.NaN, 0, 1]);
    expect(() => principalAngles(x, new Float64Array([1, 0]), 2, 2, 1)).toThrow(LoraError);
  });
});

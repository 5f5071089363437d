import type { LoraFixture } from "./fixture-types.js";
import { describe, expect, it } from "vitest";
import { type LoraModule, principalAngles, Rng, subspaceOverlap } from "../src/index.js";
import { fixture, randomMatrix, relErr } from "./helpers.js";

const lora = fixture<LoraFixture>("lora.json");

describe("principal angles", () => {
  it("cosines match torch (svdvals of Q_xᵀ Q_y)", () => {
    const a = lora.angles;
    const { cosines } = principalAngles(
      Float32Array.from(a.X),
      Float32Array.from(a.Y),
      a.rows,
      a.p,
      a.q,
    );
    expect(relErr(cosines, a.cosines)).toBeLessThan(1e-8);
  });
});

describe("subspaceOverlap", () => {
  const rng = new Rng(5);
  const mk = (B: Float32Array, r: number): LoraModule => ({
    A: randomMatrix(rng, r, 6),
    B,
    rank: r,
    inFeatures: 6,
    outFeatures: 8,
    scale: 1,
  });
  it("is 1 for the same span and 0 for orthogonal spans", () => {
    const b = randomMatrix(rng, 8, 2);
    const rescaled = b.map((x) => 3 * x);
    expect(subspaceOverlap(mk(b, 2), mk(rescaled, 2)).overlap).toBeCloseTo(1, 12);
    const e01 = new Float32Array(16);
    e01[0] = 1; // row 0, col 0
    e01[3] = 1; // row 1, col 1
    const e23 = new Float32Array(16);
    e23[4] = 1;
    e23[7] = 1;
    const o = subspaceOverlap(mk(e01, 2), mk(e23, 2));
    expect(o.overlap).toBeCloseTo(0, 12);
    expect(o.angles[0]).toBeCloseTo(Math.PI / 2, 12);
  });
  it("input side uses the rows of A", () => {
    const a = mk(randomMatrix(rng, 8, 3), 3);
    expect(subspaceOverlap(a, a, "input").overlap).toBeCloseTo(1, 12);
  });
});

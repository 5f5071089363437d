import { Rng } from "@merge/lora";
import { describe, expect, it } from "vitest";
import { getStrategy } from "../src/index.js";
import { densify, denseOf, input, randomExpert, relErr } from "./helpers.js";

const frob2 = (x: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
};

/** Trace identities of MᵀM, computed naively in the test. */
function gramTraces(M: Float64Array, m: number, n: number): { t1: number; t2: number } {
  // t1 = Σσ², t2 = Σσ⁴ = ‖MᵀM‖²_F: all R nonzero σ equal ⟺ t1² = R·t2.
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += M[k * n + i]! * M[k * n + j]!;
      G[i * n + j] = s;
    }
  let t1 = 0;
  for (let i = 0; i < n; i++) t1 += G[i * n + i]!;
  return { t1, t2: frob2(G) };
}

describe("energy_iso (ours, static)", () => {
  const rng = new Rng(7);
  const experts = [
    randomExpert(rng, 24, 40, 2, 2),
    randomExpert(rng, 24, 40, 3, 0.5),
    null,
    randomExpert(rng, 24, 40, 4, 1),
  ];
  const s = getStrategy("energy_iso");

  it("declares a low-rank result and has no hyperparameters", () => {
    expect(s.resultKind).toBe("lowrank");
    expect(s.defaults).toEqual({});
  });

  it("has the mean energy of the present experts and a flat spectrum over the sum's rank", () => {
    const r = s.merge(input(experts), {}, { seed: 0 });
    expect(r.kind).toBe("lowrank");
    if (r.kind !== "lowrank") return;
    expect(r.rank).toBe(9); // 2 + 3 + 4 generic directions
    const D = densify(r);
    const present = experts.filter((e) => e !== null);
    const meanEnergy = present.reduce((a, e) => a + frob2(denseOf(e)), 0) / present.length;
    expect(frob2(D) / meanEnergy).toBeCloseTo(1, 6);
    const { t1, t2 } = gramTraces(D, 24, 40);
    expect((t1 * t1) / (r.rank * t2)).toBeCloseTo(1, 5);
  });

  it("acts only inside the experts' input subspaces (no null-space directions get weight)", () => {
    const r = s.merge(input(experts), {}, { seed: 0 });
    const D = densify(r);
    // An x orthogonal to every expert's A rows (Gram–Schmidt here, in the test) must map to 0.
    const basis: Float64Array[] = [];
    for (const e of experts) {
      if (!e) continue;
      for (let k = 0; k < e.rank; k++) {
        const v = Float64Array.from(e.A.subarray(k * 40, (k + 1) * 40));
        for (const b of basis) {
          let d = 0;
          for (let j = 0; j < 40; j++) d += v[j]! * b[j]!;
          for (let j = 0; j < 40; j++) v[j] = v[j]! - d * b[j]!;
        }
        const n = Math.sqrt(frob2(v));
        basis.push(v.map((x) => x / n));
      }
    }
    const x = Float64Array.from({ length: 40 }, (_, j) => Math.sin(j + 1));
    for (const b of basis) {
      let d = 0;
      for (let j = 0; j < 40; j++) d += x[j]! * b[j]!;
      for (let j = 0; j < 40; j++) x[j] = x[j]! - d * b[j]!;
    }
    let out = 0;
    for (let i = 0; i < 24; i++) {
      let s2 = 0;
      for (let j = 0; j < 40; j++) s2 += D[i * 40 + j]! * x[j]!;
      out += s2 * s2;
    }
    expect(Math.sqrt(out) / Math.sqrt(frob2(D))).toBeLessThan(1e-5);
  });

  it("one expert alone keeps its energy and directions (spectrum flattened)", () => {
    const e = experts[0]!;
    const r = s.merge(input([e]), {}, { seed: 0 });
    expect(frob2(densify(r)) / frob2(denseOf(e))).toBeCloseTo(1, 6);
    // The same merge twice is the same (determinism) and scales with the expert weight.
    const twice = s.merge(input([e]), {}, { seed: 0, expertWeights: [2] });
    expect(
      relErr(
        densify(twice),
        densify(r).map((x) => 2 * x),
      ),
    ).toBeLessThan(1e-6);
  });

  it("all-null slots merge to zero", () => {
    const r = s.merge(input([null, null]), {}, { seed: 0 });
    expect(r.kind === "lowrank" && r.rank === 0).toBe(true);
  });
});

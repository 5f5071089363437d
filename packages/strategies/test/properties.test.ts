import { type LoraModule, Rng, thinQr } from "@merge/lora";
import { describe, expect, it } from "vitest";
import {
  fixedDropMasks,
  getStrategy,
  listStrategies,
  mergeDareTies,
  osmAnalyse,
  seededDropMasks,
  toLowRank,
} from "../src/index.js";
import { denseOf, densify, input, randomExpert, relErr } from "./helpers.js";

const rng = new Rng(2024);
const e1 = randomExpert(rng, 24, 40, 3, 2);
const e2 = randomExpert(rng, 24, 40, 2, 0.5);
const e3 = randomExpert(rng, 24, 40, 4, 1);
const isSeeded = (name: string) => name.includes("dare");

function sumOf(experts: Array<LoraModule | null>, w?: number[]): Float64Array {
  const out = new Float64Array(24 * 40);
  experts.forEach((e, i) => {
    if (e)
      denseOf(e).forEach((x, j) => {
        out[j]! += (w?.[i] ?? 1) * x;
      });
  });
  return out;
}

describe("one expert merged with itself", () => {
  const copies = [e1, e1, e1];
  it("linear average and task arithmetic with λ = 1/N return it", () => {
    const ctx = { seed: 0 };
    expect(
      relErr(densify(getStrategy("linear").merge(input(copies), {}, ctx)), denseOf(e1)),
    ).toBeLessThan(1e-6);
    const ta = getStrategy("task_arithmetic").merge(input(copies), { lambda: 1 / 3 }, ctx);
    expect(relErr(densify(ta), denseOf(e1))).toBeLessThan(1e-6);
  });
  it("osm returns it exactly, with T_L = T_R = N·I and s_k = N·σ_k", () => {
    const r = getStrategy("osm").merge(input(copies), {}, { seed: 0 });
    expect(r.kind).toBe("lowrank");
    expect(relErr(densify(r), denseOf(e1))).toBeLessThan(1e-6);
    const a = osmAnalyse(input(copies), { seed: 0 });
    expect(a.singularValues.length).toBe(3);
    expect(a.activeExperts).toBe(3);
    for (const t of [a.left.sharing, a.right.sharing]) {
      expect(t.length).toBe(3);
      for (const n of t) expect(n).toBeCloseTo(3, 9);
    }
    const single = osmAnalyse(input([e1]), { seed: 0 });
    a.singularValues.forEach((s, k) => {
      expect(s).toBeCloseTo(3 * single.singularValues[k]!, 9);
    });
  });
  it("TIES at density 1 returns it (all signs agree, disjoint mean of equal values)", () => {
    const r = getStrategy("ties").merge(input(copies), { density: 1 }, { seed: 0 });
    expect(relErr(densify(r), denseOf(e1))).toBeLessThan(1e-6);
  });
});

describe("osm", () => {
  it("experts in mutually orthogonal subspaces give the plain sum (task arithmetic, λ = 1)", () => {
    // Each expert reads its own block of input columns and writes its own block of output rows,
    // so both their column and row spaces are mutually orthogonal.
    const blockExpert = (
      rank: number,
      rows: [number, number],
      cols: [number, number],
    ): LoraModule => {
      const e = randomExpert(rng, 24, 40, rank);
      for (let i = 0; i < 24; i++)
        if (i < rows[0] || i >= rows[1]) for (let k = 0; k < rank; k++) e.B[i * rank + k] = 0;
      for (let k = 0; k < rank; k++)
        for (let j = 0; j < 40; j++) if (j < cols[0] || j >= cols[1]) e.A[k * 40 + j] = 0;
      return e;
    };
    const experts = [
      blockExpert(2, [0, 8], [0, 10]),
      blockExpert(3, [8, 16], [10, 25]),
      blockExpert(2, [16, 24], [25, 40]),
    ];
    const r = getStrategy("osm").merge(input(experts), {}, { seed: 0, expertWeights: [1, 0.5, 2] });
    expect(relErr(densify(r), sumOf(experts, [1, 0.5, 2]))).toBeLessThan(1e-6);
    const a = osmAnalyse(input(experts), { seed: 0, expertWeights: [1, 0.5, 2] });
    for (const t of [a.left.sharing, a.right.sharing])
      for (const n of t) expect(n).toBeCloseTo(1, 9);
  });
  // The reviewer's case: orthogonal experts in random (not axis-aligned) bases with EQUAL
  // singular values, where the joint SVD basis inside the tied group is arbitrary.
  const orthonormalColumns = (rows: number, cols: number): Float64Array => {
    const g = Float32Array.from({ length: rows * cols }, () => rng.nextGaussian());
    return thinQr(g, rows, cols).q;
  };
  const tiedOrthogonalExperts = (ranks: number[], sigma = 1): LoraModule[] => {
    const total = ranks.reduce((s, r) => s + r, 0);
    const u = orthonormalColumns(24, total);
    const v = orthonormalColumns(40, total);
    let first = 0;
    return ranks.map((r) => {
      const B = new Float32Array(24 * r);
      const A = new Float32Array(r * 40);
      for (let k = 0; k < r; k++) {
        for (let i = 0; i < 24; i++) B[i * r + k] = sigma * u[i * total + first + k]!;
        for (let j = 0; j < 40; j++) A[k * 40 + j] = v[j * total + first + k]!;
      }
      first += r;
      return { A, B, rank: r, inFeatures: 40, outFeatures: 24, scale: 1 };
    });
  };
  const perturbed = (e: LoraModule, rel: number, seed: number): LoraModule => {
    const g = new Rng(seed);
    return { ...e, B: e.B.map((x) => x * (1 + rel * g.nextGaussian())) };
  };
  it("orthogonal experts in random bases with equal singular values give the plain sum", () => {
    for (const ranks of [
      [1, 1],
      [2, 1, 3],
    ]) {
      const experts = tiedOrthogonalExperts(ranks);
      const r = getStrategy("osm").merge(input(experts), {}, { seed: 0 });
      expect(relErr(densify(r), sumOf(experts))).toBeLessThan(1e-6);
      // Float32 storage keeps the random bases orthogonal to ~1e-8 only, hence 6 digits.
      const a = osmAnalyse(input(experts), { seed: 0 });
      for (const t of [a.left.sharing, a.right.sharing])
        for (const n of t) expect(n).toBeCloseTo(1, 6);
    }
  });
  it("is continuous: a 1e-7 relative change of one expert moves the output by < 1e-5", () => {
    for (const experts of [
      tiedOrthogonalExperts([1, 1]),
      tiedOrthogonalExperts([2, 2, 1]),
      [e1, e2, e3],
    ]) {
      const moved = [perturbed(experts[0]!, 1e-7, 77), ...experts.slice(1)];
      expect(relErr(denseOf(moved[0]!), denseOf(experts[0]!))).toBeGreaterThan(0);
      const a = densify(getStrategy("osm").merge(input(experts), {}, { seed: 0 }));
      const b = densify(getStrategy("osm").merge(input(moved), {}, { seed: 0 }));
      expect(relErr(b, a)).toBeLessThan(1e-5);
    }
  });
  it("does not depend on expert order, also with tied singular values", () => {
    const experts = tiedOrthogonalExperts([1, 2, 1]);
    const shared = [experts[0]!, experts[1]!, e1, experts[2]!];
    const w = [1, 0.5, 0.8, 2];
    const a = densify(getStrategy("osm").merge(input(shared), {}, { seed: 0, expertWeights: w }));
    const order = [3, 0, 2, 1];
    const b = densify(
      getStrategy("osm").merge(
        input(order.map((i) => shared[i]!)),
        {},
        { seed: 0, expertWeights: order.map((i) => w[i]!) },
      ),
    );
    expect(relErr(b, a)).toBeLessThan(1e-6);
  });
  it("opposite experts cancel to zero without NaN, and are not amplified next to a third", () => {
    const negated = { ...e1, B: e1.B.map((x) => -x) };
    const zeroish = densify(getStrategy("osm").merge(input([e1, negated]), {}, { seed: 0 }));
    expect(zeroish.every(Number.isFinite)).toBe(true);
    const e1Norm = Math.sqrt(denseOf(e1).reduce((s, x) => s + x * x, 0));
    expect(Math.sqrt(zeroish.reduce((s, x) => s + x * x, 0)) / e1Norm).toBeLessThan(1e-6);
    // e1 − e1 + e2: the sum is e2 and E ≽ S², so T ≼ I is clamped to I and e2 comes back whole.
    const r = densify(getStrategy("osm").merge(input([e1, negated, e2]), {}, { seed: 0 }));
    expect(relErr(r, denseOf(e2))).toBeLessThan(1e-5);
  });
  it("zero deltas give zero", () => {
    const zero = (e: LoraModule): LoraModule => ({ ...e, A: new Float32Array(e.A.length) });
    const r = getStrategy("osm").merge(input([zero(e1), zero(e3)]), {}, { seed: 0 });
    expect(densify(r).every((x) => x === 0)).toBe(true);
  });
  it("shared directions are shrunk: overlapping experts give less than their sum", () => {
    const r = densify(getStrategy("osm").merge(input([e1, e2, e3]), {}, { seed: 0 }));
    const sum = sumOf([e1, e2, e3]);
    const norm = (x: Float64Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));
    expect(norm(r)).toBeLessThan(norm(sum));
  });
  it("γ = 0 is the plain sum; energy < 1 lowers the rank", () => {
    const experts = [e1, e2, e3];
    expect(
      relErr(
        densify(getStrategy("osm").merge(input(experts), { gamma: 0 }, { seed: 0 })),
        sumOf(experts),
      ),
    ).toBeLessThan(1e-6);
    const full = getStrategy("osm").merge(input(experts), {}, { seed: 0 });
    const cut = getStrategy("osm").merge(input(experts), { energy: 0.5 }, { seed: 0 });
    if (full.kind !== "lowrank" || cut.kind !== "lowrank") throw new Error("osm is low-rank");
    expect(full.rank).toBe(9);
    expect(cut.rank).toBeLessThan(9);
  });
  it("a missing expert is the same as leaving it out", () => {
    const a = getStrategy("osm").merge(
      input([e1, null, e3]),
      {},
      { seed: 0, expertWeights: [1, 7, 2] },
    );
    const b = getStrategy("osm").merge(input([e1, e3]), {}, { seed: 0, expertWeights: [1, 2] });
    expect(relErr(densify(a), densify(b))).toBeLessThan(1e-6);
  });
});

describe("every registered static strategy (routed ones: spectral-routed.test.ts)", () => {
  const zero = (e: LoraModule): LoraModule => ({ ...e, B: new Float32Array(e.B.length) });
  for (const s of listStrategies().filter((s) => s.resultKind !== "routed")) {
    it(`${s.name}: zero deltas give zero, missing experts give zero`, () => {
      // An empty expert list is rejected (validation.test.ts); all-null slots are valid.
      for (const experts of [
        [zero(e1), zero(e2)],
        [null, null],
      ]) {
        const r = s.merge(input(experts), {}, { seed: 1 });
        expect(r.outFeatures).toBe(24);
        expect(r.inFeatures).toBe(40);
        expect(densify(r).every((x) => x === 0)).toBe(true);
      }
    });
    if (!isSeeded(s.name)) {
      it(`${s.name}: result does not depend on expert order`, () => {
        const w = [0.7, 1.3, 0.4];
        const a = densify(s.merge(input([e1, e2, e3]), {}, { seed: 5, expertWeights: w }));
        const b = densify(
          s.merge(input([e3, e1, e2]), {}, { seed: 5, expertWeights: [w[2]!, w[0]!, w[1]!] }),
        );
        expect(relErr(b, a)).toBeLessThan(1e-5);
      });
    }
    it(`${s.name}: deterministic for a seed`, () => {
      const a = s.merge(input([e1, e2]), {}, { seed: 9 });
      const b = s.merge(input([e1, e2]), {}, { seed: 9 });
      expect(densify(a)).toEqual(densify(b));
    });
  }
});

describe("cat, svd and truncation", () => {
  it("cat equals the sum of dense deltas with heterogeneous ranks and a missing expert", () => {
    const experts = [e1, null, e2, e3];
    const w = [0.5, 3, -1, 2];
    const r = getStrategy("cat").merge(input(experts), {}, { seed: 0, expertWeights: w });
    if (r.kind !== "lowrank") throw new Error("cat is low-rank");
    expect(r.rank).toBe(9);
    expect(relErr(densify(r), sumOf(experts, w))).toBeLessThan(1e-6);
  });
  it("svd at the full rank reconstructs the sum; lower ranks report their error exactly", () => {
    const experts = [e1, e2, e3];
    const full = getStrategy("svd").merge(input(experts), { rank: 9 }, { seed: 0 });
    expect(relErr(densify(full), sumOf(experts))).toBeLessThan(1e-6);
    const cat = getStrategy("cat").merge(input(experts), {}, { seed: 0 });
    const { factors, relativeError } = toLowRank(cat, { rank: 4 });
    expect(factors.rank).toBe(4);
    expect(relativeError).toBeCloseTo(relErr(densify(factors), sumOf(experts)), 6);
    const svd4 = getStrategy("svd").merge(input(experts), { rank: 4 }, { seed: 0 });
    expect(relErr(densify(svd4), densify(factors))).toBeLessThan(1e-5);
  });
  it("toLowRank of a dense result: exact at full rank, reported error when truncated", () => {
    const ties = getStrategy("ties").merge(input([e1, e2, e3]), {}, { seed: 0 });
    const exact = toLowRank(ties, { rank: 24 });
    expect(exact.relativeError).toBeLessThan(1e-6);
    expect(relErr(densify(exact.factors), densify(ties))).toBeLessThan(1e-6);
    const cut = toLowRank(ties, { rank: 5, seed: 1 });
    expect(cut.factors.rank).toBe(5);
    expect(cut.relativeError).toBeCloseTo(relErr(densify(cut.factors), densify(ties)), 6);
    expect(cut.relativeError).toBeGreaterThan(0.01);
  });
  it("knots with a plain sum of coefficients is task arithmetic", () => {
    const r = getStrategy("knots").merge(
      input([e1, e2, null, e3]),
      { method: "linear" },
      { seed: 0 },
    );
    expect(relErr(densify(r), sumOf([e1, e2, null, e3]))).toBeLessThan(1e-6);
  });
});

describe("DARE", () => {
  it("same seed → identical masks; another seed → different; keeps ≈ 1 − p", () => {
    const a = densify(getStrategy("dare").merge(input([e1, e2]), { p: 0.7 }, { seed: 1 }));
    const b = densify(getStrategy("dare").merge(input([e1, e2]), { p: 0.7 }, { seed: 1 }));
    const c = densify(getStrategy("dare").merge(input([e1, e2]), { p: 0.7 }, { seed: 2 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const keep = new Uint8Array(100_000);
    seededDropMasks(3, "m", 0.7).fill(0, 0, keep, keep.length);
    const kept = keep.reduce((s, x) => s + x, 0) / keep.length;
    expect(Math.abs(kept - 0.3)).toBeLessThan(0.01);
  });
  it("p = 0 is task arithmetic", () => {
    const r = getStrategy("dare").merge(input([e1, e2, e3]), { p: 0 }, { seed: 0 });
    expect(relErr(densify(r), sumOf([e1, e2, e3]))).toBeLessThan(1e-6);
  });
  it("injected masks: all-ones DARE-TIES equals TIES at density 1", () => {
    const ones = new Uint8Array(24 * 40).fill(1);
    const masks = fixedDropMasks([ones, ones, ones]);
    const r = mergeDareTies(
      input([e1, e2, e3]),
      { p: 0, lambda: 1, majoritySign: "total" },
      { seed: 0 },
      masks,
    );
    const t = getStrategy("ties").merge(input([e1, e2, e3]), { density: 1 }, { seed: 0 });
    expect(relErr(densify(r), densify(t))).toBeLessThan(1e-7);
  });
  it("a missing mask is a clear error", () => {
    expect(() =>
      mergeDareTies(
        input([e1]),
        { p: 0.5, lambda: 1, majoritySign: "total" },
        { seed: 0 },
        fixedDropMasks([null], "q"),
      ),
    ).toThrow(/no drop mask given for expert 0/);
  });
});

import { type LoraModule, lowRankSvd, Rng } from "@merge/lora";
import { describe, expect, it } from "vitest";
import {
  getStrategy,
  type MergeResult,
  type ModuleMergeInput,
  type RoutedMergeResult,
  routedForward,
  StrategyError,
  toLowRank,
} from "../src/index.js";
import { denseOf, densify, fixture, input, randomExpert, relErr } from "./helpers.js";

/** Shape of fixtures/spectral.json (written by tools/fixtures/strategies/make_spectral_fixtures.py). */
interface SpectralExpert {
  rank: number;
  scale: number;
  A: number[];
  B: number[];
}
interface RoutedExpected {
  strategy: string;
  hyper: Record<string, unknown>;
  y: number[];
  gates: number[];
  yExact: number[];
  gatesExact: number[];
}
interface SpectralCase {
  name: string;
  note: string;
  outFeatures: number;
  inFeatures: number;
  experts: Array<SpectralExpert | null>;
  rows: number;
  x: number[];
  isoC: { rank: number; meanSigma: number; dense: number[] };
  tsvM: { dense: number[] } | null;
  routed: RoutedExpected[];
  isoCts: Array<{
    hyper: Record<string, unknown>;
    rank: number;
    k: number;
    s: number;
    budget: number;
    dense: number[] | null; // null: a stacked basis is rank deficient, so the polar factor is not unique
  }>;
}
interface SpectralFixture {
  versions: { torch: string };
  cases: SpectralCase[];
}

const fx = fixture<SpectralFixture>("spectral.json");
const TOLERANCE = 1e-6; // relative Frobenius error of dense results and routed outputs
const GATE_TOLERANCE = 1e-9; // absolute, per gate
// The fixture's y/gates use the float32-stored bases a RoutedExpert prescribes; yExact/gatesExact
// skip that rounding, so they differ from ours by float32 rounding of the bases only.
const EXACT_TOLERANCE = 1e-5;
const ctx = { seed: 0 };

function inputOf(c: SpectralCase): ModuleMergeInput {
  const experts = c.experts.map(
    (e): LoraModule | null =>
      e && {
        A: Float32Array.from(e.A),
        B: Float32Array.from(e.B),
        rank: e.rank,
        inFeatures: c.inFeatures,
        outFeatures: c.outFeatures,
        scale: e.scale,
      },
  );
  return input(experts, c.outFeatures, c.inFeatures);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function asRouted(r: MergeResult): RoutedMergeResult {
  if (r.kind !== "routed") throw new Error(`expected a routed result, got ${r.kind}`);
  return r;
}

/** Singular values of a low-rank result (exact, factor space). */
function singularValues(r: MergeResult): Float64Array {
  if (r.kind !== "lowrank") throw new Error(`expected a low-rank result, got ${r.kind}`);
  return lowRankSvd(r).S;
}

describe(`spectral merges vs PyTorch ${fx.versions.torch} float64 references (relative error ≤ ${TOLERANCE})`, () => {
  for (const c of fx.cases) {
    it(`iso_c — ${c.name}`, () => {
      const r = getStrategy("iso_c").merge(inputOf(c), {}, ctx);
      expect(r.kind).toBe("lowrank");
      expect(r.kind === "lowrank" && r.rank).toBe(c.isoC.rank);
      expect(relErr(densify(r), c.isoC.dense)).toBeLessThan(TOLERANCE);
    });
    for (const ref of c.isoCts) {
      const expected = ref.dense;
      if (expected === null) continue;
      it(`iso_cts ${JSON.stringify(ref.hyper)} (k = ${ref.k}, s = ${ref.s}, R = ${ref.budget}) — ${c.name}`, () => {
        const r = getStrategy("iso_cts").merge(inputOf(c), ref.hyper, ctx);
        expect(r.kind).toBe("lowrank");
        expect(r.kind === "lowrank" && r.rank).toBe(ref.rank);
        expect(relErr(densify(r), expected)).toBeLessThan(TOLERANCE);
      });
    }
    if (c.tsvM) {
      const expected = c.tsvM.dense;
      it(`tsv_m — ${c.name}`, () => {
        const r = getStrategy("tsv_m").merge(inputOf(c), {}, ctx);
        expect(r.kind).toBe("lowrank");
        expect(relErr(densify(r), expected)).toBeLessThan(TOLERANCE);
      });
    }
  }

  it("the comparison can fail: iso_cts with commonFraction 0.6 misses the default reference", () => {
    const c = fx.cases[1]!;
    const ref = c.isoCts.find((x) => Object.keys(x.hyper).length === 0)!;
    const r = getStrategy("iso_cts").merge(inputOf(c), { commonFraction: 0.6 }, ctx);
    expect(relErr(densify(r), ref.dense!)).toBeGreaterThan(1e-3);
  });

  it("the comparison can fail: iso_c with α = 1.01 misses the reference", () => {
    const c = fx.cases[0]!;
    const r = getStrategy("iso_c").merge(inputOf(c), { alpha: 1.01 }, ctx);
    expect(relErr(densify(r), c.isoC.dense)).toBeGreaterThan(1e-3);
  });
});

describe(`routed forward vs PyTorch float64 references (outputs ≤ ${TOLERANCE} relative, gates ≤ ${GATE_TOLERANCE} absolute)`, () => {
  for (const c of fx.cases) {
    const x = Float32Array.from(c.x);
    for (const ref of c.routed) {
      it(`${ref.strategy} ${JSON.stringify(ref.hyper)} — ${c.name}`, () => {
        const r = asRouted(getStrategy(ref.strategy).merge(inputOf(c), ref.hyper, ctx));
        const { y, gates } = routedForward(r, x, c.rows);
        expect(y.length).toBe(c.rows * c.outFeatures);
        expect(gates.length).toBe(c.rows * c.experts.length);
        expect(relErr(y, ref.y)).toBeLessThan(TOLERANCE);
        expect(maxAbsDiff(gates, ref.gates)).toBeLessThan(GATE_TOLERANCE);
        // Against the unrounded bases: only float32 storage of the bases separates the two.
        expect(relErr(y, ref.yExact)).toBeLessThan(EXACT_TOLERANCE);
        expect(maxAbsDiff(gates, ref.gatesExact)).toBeLessThan(EXACT_TOLERANCE);
        // Absent experts never get weight.
        c.experts.forEach((e, i) => {
          if (e !== null) return;
          for (let t = 0; t < c.rows; t++) expect(gates[t * c.experts.length + i]).toBe(0);
        });
      });
    }
  }

  it("the comparison can fail: arrow at temperature 2 misses the reference gates", () => {
    const c = fx.cases[0]!;
    const ref = c.routed.find((r) => r.strategy === "arrow")!;
    const r = asRouted(getStrategy("arrow").merge(inputOf(c), { temperature: 2 }, ctx));
    const { gates } = routedForward(r, Float32Array.from(c.x), c.rows);
    expect(maxAbsDiff(gates, ref.gates)).toBeGreaterThan(1e-3);
  });
});

describe("spectral properties", () => {
  const rng = new Rng(7);
  const e1 = randomExpert(rng, 24, 40, 4, 1.5);
  const e2 = randomExpert(rng, 24, 40, 3, 0.5);
  const e3 = randomExpert(rng, 24, 40, 2, 2);

  it("iso_c of a single expert is α·mean σ·U Vᵀ of it", () => {
    for (const alpha of [1, 2.5]) {
      const r = getStrategy("iso_c").merge(input([e1]), { alpha }, ctx);
      const svd = lowRankSvd({ ...e1, B: e1.B.map((b) => b * e1.scale) });
      const { U, S, V, rank: q } = svd;
      const mean = (S[0]! + S[1]! + S[2]! + S[3]!) / 4;
      const expected = new Float64Array(24 * 40);
      for (let i = 0; i < 24; i++)
        for (let j = 0; j < 40; j++) {
          let s = 0;
          for (let c = 0; c < 4; c++) s += U[i * q + c]! * V[j * q + c]!;
          expected[i * 40 + j] = alpha * mean * s;
        }
      expect(relErr(densify(r), expected)).toBeLessThan(1e-6);
    }
  });

  it("iso_c flattens the spectrum: all R = Σr singular values equal", () => {
    const r = getStrategy("iso_c").merge(input([e1, null, e2, e3]), {}, ctx);
    expect(r.kind === "lowrank" && r.rank).toBe(9);
    const S = singularValues(r);
    const nonzero = [...S].filter((s) => s > 1e-6 * S[0]!);
    expect(nonzero.length).toBe(9);
    for (const s of nonzero) expect(Math.abs(s - S[0]!) / S[0]!).toBeLessThan(1e-6);
    // ‖ΔW‖_F is kept in the mean: σ̄ = mean of the sum's singular values.
    const sum = getStrategy("task_arithmetic").merge(input([e1, null, e2, e3]), {}, ctx);
    const Ssum = singularValues(sum);
    const mean = [...Ssum].slice(0, 9).reduce((a, b) => a + b, 0) / 9;
    expect(Math.abs(S[0]! - mean) / mean).toBeLessThan(1e-6);
  });

  it("iso_cts with commonFraction 1 is iso_c (also with a rank-deficient sum)", () => {
    const c = fx.cases[2]!; // Σ ΔW has rank 6 < Σr = 9
    for (const inp of [input([e1, null, e2, e3]), input([e1, e2]), inputOf(c)])
      for (const alpha of [1, 0.5]) {
        const cts = getStrategy("iso_cts").merge(inp, { commonFraction: 1, alpha }, ctx);
        const iso = getStrategy("iso_c").merge(inp, { alpha }, ctx);
        expect(cts.kind === "lowrank" && cts.rank).toBe(iso.kind === "lowrank" && iso.rank);
        expect(relErr(densify(cts), densify(iso))).toBeLessThan(1e-9);
      }
  });

  it("iso_cts is rank ≤ R = min(m, n, Σr) with a flat spectrum at the sum's mean σ", () => {
    // Ranks 6, 5, 4 on 24 × 40: R = 15, k = 12 common, s = 1 per expert.
    const f1 = randomExpert(rng, 24, 40, 6, 1);
    const f2 = randomExpert(rng, 24, 40, 5, 0.7);
    const f3 = randomExpert(rng, 24, 40, 4, 1.3);
    const inp = input([f1, f2, null, f3]);
    const sum = singularValues(getStrategy("task_arithmetic").merge(inp, {}, ctx));
    const mean = [...sum].slice(0, 15).reduce((a, b) => a + b, 0) / 15;
    for (const commonFraction of [0.8, 0.5, 0.2, 0]) {
      const r = getStrategy("iso_cts").merge(inp, { commonFraction }, ctx);
      expect(r.kind === "lowrank" && r.rank).toBeLessThanOrEqual(15);
      const S = singularValues(r);
      const nonzero = [...S].filter((s) => s > 1e-6 * S[0]!);
      expect(nonzero.length).toBe(r.kind === "lowrank" ? r.rank : -1);
      for (const s of nonzero) expect(Math.abs(s - mean) / mean).toBeLessThan(1e-6);
    }
    // The task-specific directions change the result: it is not Iso-C's.
    const iso = densify(getStrategy("iso_c").merge(inp, {}, ctx));
    expect(relErr(densify(getStrategy("iso_cts").merge(inp, {}, ctx)), iso)).toBeGreaterThan(1e-3);
    // R is capped by min(m, n): 6 + 5 + 4 = 15 > 12 output features.
    const g = [6, 5, 4].map((r) => randomExpert(rng, 12, 40, r, 1));
    const rg = getStrategy("iso_cts").merge(input(g, 12, 40), { commonFraction: 0.5 }, ctx);
    expect(rg.kind === "lowrank" && rg.rank).toBeLessThanOrEqual(12);
  });

  it("iso_cts of all-null or all-zero experts is zero", () => {
    const zero = (e: LoraModule): LoraModule => ({ ...e, B: new Float32Array(e.B.length) });
    for (const experts of [
      [null, null],
      [zero(e1), zero(e2)],
      [zero(e1), null],
    ]) {
      const r = getStrategy("iso_cts").merge(input(experts), {}, ctx);
      expect(r.kind === "lowrank" && r.rank).toBe(0);
      expect(densify(r).every((v) => v === 0)).toBe(true);
    }
    // An expert inside the common subspace adds no round-off directions.
    const r = getStrategy("iso_cts").merge(input([e1, e1]), {}, ctx);
    expect(r.kind === "lowrank" && r.rank).toBe(4);
  });

  it("tsv_m of experts in mutually orthogonal subspaces is their plain sum", () => {
    // Expert k lives on input coordinates [10k, 10k + r) and output coordinates [8k, 8k + r).
    const ranks = [3, 2, 4];
    const experts = ranks.map((r, k): LoraModule => {
      const A = new Float32Array(r * 40);
      const B = new Float32Array(24 * r);
      for (let c = 0; c < r; c++) {
        for (let j = 0; j < r; j++) A[c * 40 + 10 * k + j] = rng.nextGaussian();
        for (let i = 0; i < r; i++) B[(8 * k + i) * r + c] = rng.nextGaussian();
      }
      return { A, B, rank: r, inFeatures: 40, outFeatures: 24, scale: 1 + k };
    });
    const sum = new Float64Array(24 * 40);
    for (const e of experts)
      denseOf(e).forEach((v, i) => {
        sum[i] = sum[i]! + v;
      });
    const r = getStrategy("tsv_m").merge(input(experts), {}, ctx);
    expect(r.kind === "lowrank" && r.rank).toBe(9);
    expect(relErr(densify(r), sum)).toBeLessThan(1e-6);
  });

  it("tsv_m is not the plain sum once the subspaces overlap", () => {
    const r = getStrategy("tsv_m").merge(input([e1, e2, e3]), {}, ctx);
    const sum = densify(getStrategy("task_arithmetic").merge(input([e1, e2, e3]), {}, ctx));
    expect(relErr(densify(r), sum)).toBeGreaterThan(1e-3);
  });
});

describe("routed properties", () => {
  const rng = new Rng(11);
  const e1 = randomExpert(rng, 24, 40, 3, 2);
  const e2 = randomExpert(rng, 24, 40, 5, 0.5);

  it("lift_routing with one expert gives its full update (gate 1) on an x in its subspace", () => {
    const rows = 3;
    const x = new Float64Array(rows * 40);
    for (let t = 0; t < rows; t++)
      for (let c = 0; c < e1.rank; c++) {
        const w = rng.nextGaussian();
        for (let j = 0; j < 40; j++) x[t * 40 + j] = x[t * 40 + j]! + w * e1.A[c * 40 + j]!;
      }
    const r = asRouted(getStrategy("lift_routing").merge(input([e1]), {}, ctx));
    const { y, gates } = routedForward(r, x, rows);
    expect([...gates]).toEqual([1, 1, 1]);
    const d = denseOf(e1);
    const expected = new Float64Array(rows * 24);
    for (let t = 0; t < rows; t++)
      for (let o = 0; o < 24; o++) {
        let s = 0;
        for (let j = 0; j < 40; j++) s += d[o * 40 + j]! * x[t * 40 + j]!;
        expected[t * 24 + o] = s;
      }
    expect(relErr(y, expected)).toBeLessThan(1e-6);
  });

  it("a routed result keeps every expert, null slots included, with orthonormal bases", () => {
    const r = asRouted(getStrategy("smile").merge(input([e1, null, e2]), {}, ctx));
    expect(r.experts.map((e) => e?.rank ?? null)).toEqual([3, null, 5]);
    for (const e of r.experts) {
      if (e === null) continue;
      for (let a = 0; a < e.rank; a++)
        for (let b = 0; b < e.rank; b++) {
          let s = 0;
          for (let j = 0; j < 40; j++) s += e.A[a * 40 + j]! * e.A[b * 40 + j]!;
          expect(Math.abs(s - (a === b ? 1 : 0))).toBeLessThan(1e-6);
        }
    }
  });

  // The routed counterparts of properties.test.ts' "every registered strategy" checks, which
  // compare densified results and so cannot take a routed one.
  const e3 = randomExpert(rng, 24, 40, 2, 1);
  const rows = 5;
  const x = Float32Array.from({ length: rows * 40 }, () => rng.nextGaussian());
  const zero = (e: LoraModule): LoraModule => ({ ...e, B: new Float32Array(e.B.length) });
  for (const name of ["smile", "arrow", "lift_routing"]) {
    const s = getStrategy(name);
    it(`${name}: zero deltas and missing experts give null experts and a zero side branch`, () => {
      for (const experts of [
        [zero(e1), zero(e2)],
        [null, null],
      ]) {
        const r = asRouted(s.merge(input(experts), {}, ctx));
        expect(r.outFeatures).toBe(24);
        expect(r.inFeatures).toBe(40);
        expect(r.experts).toEqual([null, null]);
        const { y, gates } = routedForward(r, x, rows);
        expect(y.every((v) => v === 0)).toBe(true);
        expect(gates.every((v) => v === 0)).toBe(true);
      }
    });
    it(`${name}: outputs do not depend on expert order, gates move with their experts`, () => {
      const a = routedForward(asRouted(s.merge(input([e1, e2, e3]), {}, ctx)), x, rows);
      const b = routedForward(asRouted(s.merge(input([e3, e1, e2]), {}, ctx)), x, rows);
      expect(relErr(b.y, a.y)).toBeLessThan(1e-6);
      for (let t = 0; t < rows; t++)
        [2, 0, 1].forEach((src, dst) => {
          expect(b.gates[t * 3 + dst]).toBeCloseTo(a.gates[t * 3 + src]!, 9);
        });
    });
    it(`${name}: deterministic`, () => {
      const a = s.merge(input([e1, e2]), {}, { seed: 9 });
      const b = s.merge(input([e1, e2]), {}, { seed: 9 });
      expect(a).toEqual(b);
    });
  }

  it("toLowRank refuses a routed result with a clear error", () => {
    for (const name of ["smile", "arrow", "lift_routing"]) {
      const r = getStrategy(name).merge(input([e1, e2]), {}, ctx);
      expect(r.kind).toBe("routed");
      expect(getStrategy(name).resultKind).toBe("routed");
      expect(() => toLowRank(r, { rank: 4 })).toThrow(StrategyError);
      expect(() => toLowRank(r, { rank: 4 })).toThrow(/routed result has no single low-rank/);
    }
  });
});

describe("spectral and routed hyperparameter validation", () => {
  const e = randomExpert(new Rng(3), 24, 40, 2);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["iso_c", { alpha: -1 }, /alpha/],
    ["tsv_m", { alpha: -1 }, /alpha/],
    ["iso_cts", { alpha: -1 }, /alpha/],
    ["iso_cts", { commonFraction: 1.5 }, /commonFraction" must be in \[0, 1\]/],
    ["iso_cts", { commonFraction: -0.1 }, /commonFraction/],
    ["smile", { topK: 0 }, /topK" must be a positive integer/],
    ["smile", { topK: 1.5 }, /topK" must be a positive integer/],
    ["arrow", { temperature: 0 }, /temperature/],
    ["arrow", { topK: -2 }, /topK/],
    ["lift_routing", { topK: 1 }, /no hyperparameter "topK"/],
  ];
  for (const [name, hyper, message] of cases) {
    it(`${name} ${JSON.stringify(hyper)} throws a StrategyError`, () => {
      expect(() => getStrategy(name).merge(input([e]), hyper, ctx)).toThrow(StrategyError);
      expect(() => getStrategy(name).merge(input([e]), hyper, ctx)).toThrow(message);
    });
  }
});

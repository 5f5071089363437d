import { type LoraModule, Rng } from "@merge/lora";
import { describe, expect, it } from "vitest";
import { getStrategy, listStrategies, StrategyError } from "../src/index.js";
import { densify, input, randomExpert } from "./helpers.js";

const ctx = { seed: 7 };

function experts(): LoraModule[] {
  const rng = new Rng(11);
  return [randomExpert(rng, 24, 40, 3), randomExpert(rng, 24, 40, 2)];
}

/** A copy of expert `which` with `value` written into its factor `factor` at `index`. */
function poisoned(factor: "A" | "B", index: number, value: number, which = 1): LoraModule[] {
  const es = experts();
  const e = es[which]!;
  const f = Float32Array.from(e[factor]);
  f[index] = value;
  es[which] = { ...e, [factor]: f };
  return es;
}

describe("non-finite expert factors", () => {
  const cases = [
    ["A", "NaN", Number.NaN],
    ["B", "NaN", Number.NaN],
    ["A", "Inf", Number.POSITIVE_INFINITY],
    ["B", "-Inf", Number.NEGATIVE_INFINITY],
  ] as const;
  for (const s of listStrategies()) {
    for (const [factor, label, value] of cases) {
      it(`${s.name} rejects ${label} in ${factor}, naming the expert and module`, () => {
        const inp = input([null, ...poisoned(factor, 5, value)], 24, 40, "layers.3.v_proj");
        // The poisoned expert is slot 2 (slot 0 is null, slot 1 is clean).
        expect(() => s.merge(inp, {}, ctx)).toThrow(StrategyError);
        expect(() => s.merge(inp, {}, ctx)).toThrow(
          new RegExp(`layers\\.3\\.v_proj: expert 2 has non-finite factor values in ${factor}`),
        );
      });
    }
  }

  it("still merges finite experts (the scan has no false positives)", () => {
    for (const s of listStrategies()) {
      expect(() => s.merge(input(experts()), {}, ctx)).not.toThrow();
    }
  });
});

describe("expert list", () => {
  for (const s of listStrategies()) {
    it(`${s.name} rejects an empty expert list`, () => {
      expect(() => s.merge(input([]), {}, ctx)).toThrow(StrategyError);
      expect(() => s.merge(input([]), {}, ctx)).toThrow(/expert list is empty/);
    });

    it(`${s.name} merges all-null slots to a zero update`, () => {
      const r = s.merge(input([null, null]), {}, ctx);
      if (r.kind === "routed") expect(r.experts).toEqual([null, null]);
      else expect(densify(r).every((x) => x === 0)).toBe(true);
    });
  }
});

describe("hyperparameter ranges", () => {
  const inp = input(experts());
  const svdVariants = listStrategies()
    .map((s) => s.name)
    .filter((n) => n.endsWith("_svd"));

  it("has *_svd variants to check", () => {
    expect(svdVariants.length).toBeGreaterThan(0);
  });

  for (const name of ["svd", ...svdVariants]) {
    it(`${name} rejects a negative or fractional rank`, () => {
      const s = getStrategy(name);
      expect(() => s.merge(inp, { rank: -1 }, ctx)).toThrow(StrategyError);
      expect(() => s.merge(inp, { rank: -1 }, ctx)).toThrow(/rank/);
      expect(() => s.merge(inp, { rank: 1.5 }, ctx)).toThrow(StrategyError);
      expect(() => s.merge(inp, { rank: 2 }, ctx)).not.toThrow();
    });
  }

  const withDensity = listStrategies()
    .filter((s) => "density" in s.defaults)
    .map((s) => s.name);

  it("covers ties, magnitude_prune and knots", () => {
    for (const n of ["ties", "magnitude_prune", "knots", "ties_svd"])
      expect(withDensity).toContain(n);
  });

  for (const name of withDensity) {
    it(`${name} requires 0 < density ≤ 1`, () => {
      const s = getStrategy(name);
      for (const density of [0, -0.1, 1.01]) {
        expect(() => s.merge(inp, { density }, ctx)).toThrow(StrategyError);
        expect(() => s.merge(inp, { density }, ctx)).toThrow(/density.*\(0, 1\]/);
      }
      for (const density of [1e-3, 0.5, 1]) {
        expect(() => s.merge(inp, { density }, ctx)).not.toThrow();
      }
    });
  }

  const withLambda = listStrategies()
    .filter((s) => "lambda" in s.defaults)
    .map((s) => s.name);

  for (const name of withLambda) {
    it(`${name} requires a finite lambda (0 and negatives allowed)`, () => {
      const s = getStrategy(name);
      for (const lambda of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        expect(() => s.merge(inp, { lambda }, ctx)).toThrow(StrategyError);
      }
      for (const lambda of [0, -0.5, 2]) {
        expect(() => s.merge(inp, { lambda }, ctx)).not.toThrow();
      }
    });
  }

  it("lambda = 0 scales the update to zero (allowed, not an error)", () => {
    const r = getStrategy("task_arithmetic").merge(inp, { lambda: 0 }, ctx);
    expect(densify(r).every((x) => x === 0)).toBe(true);
  });
});

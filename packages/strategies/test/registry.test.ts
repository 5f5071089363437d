import { Rng } from "@merge/lora";
import { describe, expect, it } from "vitest";
import { DEFAULT_STRATEGY, getStrategy, listStrategies, StrategyError } from "../src/index.js";
import { input, randomExpert } from "./helpers.js";

const rng = new Rng(1);
const e = randomExpert(rng, 24, 40, 2);

describe("registry", () => {
  it("lists every required strategy once, the default (lift_routing) first", () => {
    const names = listStrategies().map((s) => s.name);
    expect(names[0]).toBe(DEFAULT_STRATEGY);
    expect(DEFAULT_STRATEGY).toBe("lift_routing");
    expect(new Set(names).size).toBe(names.length);
    for (const n of [
      "osm",
      "linear",
      "task_arithmetic",
      "ties",
      "dare",
      "dare_ties",
      "dare_linear",
      "magnitude_prune",
      "cat",
      "svd",
      "knots",
      "ties_svd",
      "iso_c",
      "iso_cts",
      "tsv_m",
      "smile",
      "arrow",
      "lift_routing",
    ]) {
      expect(names).toContain(n);
    }
  });
  it("declares a result kind: routed for smile, arrow and lift_routing, low-rank for iso_c, iso_cts and tsv_m", () => {
    for (const s of listStrategies()) {
      expect(["lowrank", "dense", "routed"]).toContain(s.resultKind);
      expect(s.resultKind === "routed").toBe(["smile", "arrow", "lift_routing"].includes(s.name));
    }
    expect(getStrategy("iso_c").resultKind).toBe("lowrank");
    expect(getStrategy("tsv_m").resultKind).toBe("lowrank");
    expect(getStrategy("iso_cts").resultKind).toBe("lowrank");
  });
  it("every strategy documents itself and cites a reference", () => {
    for (const s of listStrategies()) {
      expect(s.description.length).toBeGreaterThan(20);
      expect(s.reference?.length ?? 0).toBeGreaterThan(10);
      expect(Object.isFrozen(s.defaults)).toBe(true);
    }
  });
  it("unknown names list the known ones", () => {
    expect(() => getStrategy("avg")).toThrow(
      /unknown strategy "avg" \(known: lift_routing, osm, linear/,
    );
  });
});

describe("hyperparameter and input validation", () => {
  const ties = getStrategy("ties");
  const ctx = { seed: 0 };
  it("rejects unknown names, wrong types and out-of-range values", () => {
    expect(() => ties.merge(input([e]), { densty: 0.5 }, ctx)).toThrow(
      /no hyperparameter "densty"/,
    );
    expect(() => ties.merge(input([e]), { density: "0.5" }, ctx)).toThrow(
      /must be a finite number/,
    );
    expect(() => ties.merge(input([e]), { density: 1.5 }, ctx)).toThrow(
      /density" must be in \(0, 1\]/,
    );
    expect(() => ties.merge(input([e]), { majoritySign: "most" }, ctx)).toThrow(
      /one of total, frequency/,
    );
    expect(() => getStrategy("dare").merge(input([e]), { p: 1 }, ctx)).toThrow(
      /p" must be in \[0, 1\)/,
    );
    expect(() => getStrategy("osm").merge(input([e]), { gamma: Number.NaN }, ctx)).toThrow(
      StrategyError,
    );
  });
  it("rejects mismatched shapes and weight counts, naming the module", () => {
    expect(() => ties.merge(input([e], 24, 41), {}, ctx)).toThrow(
      /q_proj: expert 0 is 24×40, expected 24×41/,
    );
    expect(() => ties.merge(input([e]), {}, { seed: 0, expertWeights: [1, 2] })).toThrow(
      /2 expert weights for 1 experts/,
    );
    expect(() =>
      getStrategy("linear").merge(input([e, e]), {}, { seed: 0, expertWeights: [1, -1] }),
    ).toThrow(/sum to 0/);
    const broken = { ...e, A: e.A.subarray(1) };
    expect(() => getStrategy("osm").merge(input([broken]), {}, ctx)).toThrow(/expert 0 factors/);
  });
});

import { describe, expect, it } from "vitest";
import {
  describeParam,
  getStrategy,
  listStrategies,
  StrategyError,
  strategyParams,
  validateHyper,
} from "../src/index.js";

describe("declared hyperparameters", () => {
  it("every strategy declares each default once, with its type", () => {
    for (const s of listStrategies()) {
      expect(Object.keys(s.params).sort(), s.name).toEqual(Object.keys(s.defaults).sort());
      for (const [k, p] of Object.entries(s.params)) {
        expect(typeof p.default, `${s.name}.${k}`).toBe(p.type);
        expect(s.defaults[k], `${s.name}.${k}`).toBe(p.default);
      }
      expect(s.checkHyper({})).toEqual(s.defaults);
    }
    expect(Object.keys(strategyParams())).toEqual(listStrategies().map((s) => s.name));
  });

  it("*_svd variants declare the base's parameters plus rank and energy", () => {
    expect(Object.keys(getStrategy("ties_svd").params)).toEqual([
      "density",
      "lambda",
      "majoritySign",
      "rank",
      "energy",
    ]);
  });

  it("checkHyper validates choices and ranges without merging, naming the parameter", () => {
    const bad: Array<[string, Record<string, unknown>, RegExp]> = [
      ["ties", { majoritySign: "bogus" }, /"majoritySign" must be one of total, frequency/],
      ["ties", { density: 5 }, /"density" must be in \(0, 1\], got 5/],
      ["knots", { method: "nope" }, /"method" must be one of ties, dare_ties, linear/],
      ["dare", { p: 1 }, /"p" must be in \[0, 1\)/],
      ["osm", { rank: 1.5 }, /"rank" must be a non-negative integer/],
      ["arrow", { temperature: 0 }, /"temperature" must be > 0/],
      ["smile", { topK: 0 }, /"topK" must be a positive integer/],
      ["linear", { normalize: "yes" }, /"normalize" must be a boolean/],
    ];
    for (const [name, hyper, message] of bad) {
      expect(() => getStrategy(name).checkHyper(hyper)).toThrow(StrategyError);
      expect(() => validateHyper(name, hyper), `${name} ${JSON.stringify(hyper)}`).toThrow(message);
    }
    expect(validateHyper("ties", { density: 0.5 })).toEqual({
      density: 0.5,
      lambda: 1,
      majoritySign: "total",
    });
  });

  it("describes each parameter with its range or choices", () => {
    const ties = getStrategy("ties").params;
    expect(describeParam("density", ties.density!)).toBe("density: in (0, 1], default 0.2");
    expect(describeParam("majoritySign", ties.majoritySign!)).toBe(
      'majoritySign: one of "total", "frequency", default "total"',
    );
    expect(describeParam("rank", getStrategy("svd").params.rank!)).toBe(
      "rank: a non-negative integer, default 0",
    );
    expect(describeParam("lambda", ties.lambda!)).toBe("lambda: a finite number, default 1");
  });
});

import { Rng } from "@merge/lora";
import { describe, expect, it } from "vitest";
import { StrategyError, getStrategy } from "../src/index.js";
import { input, randomExpert } from "./helpers.js";

describe("StrategyError carries `where`", () => {
  it("a merge failure names the module in the message and in where.module", () => {
    const rng = new Rng(1);
    const experts = [randomExpert(rng, 24, 40, 2), randomExpert(rng, 24, 40, 2)];
    const linear = getStrategy("linear");
    const hyper = linear.checkHyper({ normalize: true });
    let caught: unknown;
    try {
      linear.merge(input(experts, 24, 40, "model.layers.3.mlp.up_proj"), hyper, {
        seed: 0,
        expertWeights: [1, -1],
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StrategyError);
    expect((caught as StrategyError).where).toEqual({ module: "model.layers.3.mlp.up_proj" });
    expect((caught as StrategyError).message).toMatch(/^model\.layers\.3\.mlp\.up_proj: /);
  });

  it("an error with no module has an empty where", () => {
    expect(() => getStrategy("no-such-method")).toThrow(StrategyError);
    try {
      getStrategy("no-such-method");
    } catch (err) {
      expect((err as StrategyError).where).toEqual({});
    }
  });
});

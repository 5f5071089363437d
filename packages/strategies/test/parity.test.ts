import type { MergeCase, MergesFixture } from "./fixture-types.js";
import { type LoraModule, loraModuleFromPeft } from "@merge/lora";
import { describe, expect, it } from "vitest";
import {
  type DareHyper,
  type DareLinearHyper,
  type DareTiesHyper,
  fixedDropMasks,
  getStrategy,
  type MergeContext,
  type MergeResult,
  type ModuleMergeInput,
  mergeDare,
  mergeDareLinear,
  mergeDareTies,
} from "../src/index.js";
import { densify, fixture, relErr } from "./helpers.js";

const fx = fixture<MergesFixture>("merges.json");
const TOLERANCE = 1e-5;

function inputFor(module: string): ModuleMergeInput {
  const { outFeatures, inFeatures } = fx.modules[module]!;
  const experts: Array<LoraModule | null> = fx.experts.map((name: string) => {
    const e = fx.factors[module]![name];
    if (e === undefined) return null;
    return loraModuleFromPeft(
      {
        A: Float32Array.from(e.A),
        aShape: e.aShape,
        B: Float32Array.from(e.B),
        bShape: e.bShape,
        rank: e.rank,
        alpha: e.alpha,
      },
      { useRslora: e.useRslora, fanInFanOut: false },
    );
  });
  return { module, outFeatures, inFeatures, experts };
}

function run(c: MergeCase, module: string): MergeResult {
  const input = inputFor(module);
  const ctx: MergeContext = { seed: 0, ...(c.weights ? { expertWeights: c.weights } : {}) };
  if (c.masks) {
    const masks = fixedDropMasks(
      (c.masks[module] as Array<number[] | null>).map((m) =>
        m === null ? null : Uint8Array.from(m),
      ),
      module,
    );
    const defaults = getStrategy(c.strategy).defaults;
    const h = { ...defaults, ...c.hyper };
    if (c.strategy === "dare") return mergeDare(input, h as DareHyper, ctx, masks);
    if (c.strategy === "dare_linear")
      return mergeDareLinear(input, h as DareLinearHyper, ctx, masks);
    if (c.strategy === "dare_ties") return mergeDareTies(input, h as DareTiesHyper, ctx, masks);
    throw new Error(`masks for ${c.strategy}`);
  }
  return getStrategy(c.strategy).merge(input, c.hyper, ctx);
}

describe(`parity with PEFT ${fx.versions.peft} / PyTorch ${fx.versions.torch} (relative error ≤ ${TOLERANCE})`, () => {
  for (const c of fx.cases) {
    for (const module of Object.keys(fx.modules)) {
      it(`${c.name} — ${module.split(".").slice(-1)[0]} [${c.reference}]`, () => {
        const got = densify(run(c, module));
        const err = relErr(got, c.expected[module]!);
        expect(err).toBeLessThan(TOLERANCE);
      });
    }
  }

  // The *_svd variants at full rank (24 = min(out, in)) must reproduce the dense merge that PEFT
  // then factorises; their randomized SVD is exact there because rank + oversampling ≥ 24.
  for (const [variant, base] of [
    ["ties_svd", "ties, equal weights"],
    ["magnitude_prune_svd", "magnitude prune"],
  ] as const) {
    it(`${variant} at full rank equals PEFT's ${variant}`, () => {
      const c = fx.cases.find((x) => x.name === base)!;
      for (const module of Object.keys(fx.modules)) {
        const ctx: MergeContext = { seed: 0, ...(c.weights ? { expertWeights: c.weights } : {}) };
        const r = getStrategy(variant).merge(inputFor(module), { ...c.hyper, rank: 24 }, ctx);
        expect(r.kind).toBe("lowrank");
        expect(relErr(densify(r), c.expected[module]!)).toBeLessThan(TOLERANCE);
      }
    });
  }

  it("the comparison can fail: a perturbed hyperparameter misses the reference", () => {
    const c = fx.cases.find((x) => x.name === "ties, equal weights")!;
    const module = Object.keys(fx.modules)[0]!;
    const wrong = getStrategy("ties").merge(
      inputFor(module),
      { ...c.hyper, density: 0.35 },
      { seed: 0 },
    );
    expect(relErr(densify(wrong), c.expected[module]!)).toBeGreaterThan(1e-3);
  });
});

import type { LoraFixture } from "./fixture-types.js";
import { describe, expect, it } from "vitest";
import {
  DeltaRowReader,
  denseDelta,
  LoraError,
  loraModuleFromPeft,
  loraScale,
  validateLoraModule,
} from "../src/index.js";
import { fixture, naiveTranspose, relErr } from "./helpers.js";

const lora = fixture<LoraFixture>("lora.json");

describe("loraScale and loraModuleFromPeft vs PEFT", () => {
  for (const [module, experts] of Object.entries(lora.experts)) {
    for (const [name, e] of Object.entries(experts)) {
      it(`${module} ${name}: scale and ΔW match PEFT's scaling and get_delta_weight`, () => {
        expect(loraScale(e.alpha, e.rank, e.useRslora)).toBeCloseTo(e.peftScaling, 12);
        const m = loraModuleFromPeft(
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
        expect(m.outFeatures).toBe(e.bShape[0]);
        expect(m.inFeatures).toBe(e.aShape[1]);
        expect(relErr(denseDelta(m), e.peftDelta)).toBeLessThan(1e-6);
      });
    }
  }

  it("fan_in_fan_out: the module is the logical out×in map; PEFT's delta is its transpose", () => {
    const f = lora.fanInFanOut;
    const m = loraModuleFromPeft(
      {
        A: Float32Array.from(f.A),
        aShape: f.aShape,
        B: Float32Array.from(f.B),
        bShape: f.bShape,
        rank: f.rank,
        alpha: f.alpha,
      },
      { useRslora: false, fanInFanOut: true },
    );
    // Conv1D stores its weight (in, out); PEFT's get_delta_weight matches that layout.
    expect(f.peftDeltaShape).toEqual(f.baseWeightShape);
    expect([m.inFeatures, m.outFeatures]).toEqual(f.baseWeightShape);
    const logical = denseDelta(m);
    expect(relErr(naiveTranspose(logical, m.outFeatures, m.inFeatures), f.peftDelta)).toBeLessThan(
      1e-6,
    );
  });
});

describe("bad input", () => {
  const A = new Float32Array(2 * 5);
  const B = new Float32Array(4 * 2);
  it("rejects a rank that does not match the shapes", () => {
    expect(() =>
      loraModuleFromPeft(
        { A, aShape: [2, 5], B, bShape: [4, 2], rank: 3, alpha: 1 },
        { useRslora: false, fanInFanOut: false },
      ),
    ).toThrow(/rank 3 does not match/);
  });
  it("rejects data shorter than its shape", () => {
    expect(() =>
      loraModuleFromPeft(
        { A: A.subarray(1), aShape: [2, 5], B, bShape: [4, 2], rank: 2, alpha: 1 },
        { useRslora: false, fanInFanOut: false },
      ),
    ).toThrow(LoraError);
  });
  it("rejects non-positive ranks and non-finite alpha", () => {
    expect(() => loraScale(8, 0, false)).toThrow(LoraError);
    expect(() => loraScale(Number.NaN, 4, false)).toThrow(LoraError);
  });
  it("validateLoraModule names the module", () => {
    expect(() =>
      validateLoraModule(
        { A, B, rank: 2, inFeatures: 6, outFeatures: 4, scale: 1 },
        "model.layers.0.self_attn.q_proj",
      ),
    ).toThrow(/model\.layers\.0\.self_attn\.q_proj: A has 10 values/);
  });
  it("rejects row ranges outside the matrix", () => {
    const r = new DeltaRowReader({ A, B, rank: 2, inFeatures: 5, outFeatures: 4, scale: 1 });
    expect(() => r.read(2, 5)).toThrow(/row range/);
  });
});

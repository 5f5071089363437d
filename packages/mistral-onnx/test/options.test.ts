import { describe, expect, it } from "vitest";
import {
  CHOICE_SCORINGS,
  DEFAULT_CHOICE_SCORING,
  DEFAULT_DELTA_MODE,
  DEFAULT_DTYPE,
  DEFAULT_FUSED_OPS,
  DEFAULT_QUANT_BLOCK_SIZE,
  DEFAULT_WEIGHT_QUANT,
  DELTA_MODES,
  EXECUTION_PROVIDERS,
  FUSED_OPS,
  formatChoices,
  isValidQuantBlockSize,
  MODEL_DTYPES,
  WEIGHT_QUANTS,
  buildOnnxModel,
} from "../src/index.js";

describe("exported option lists", () => {
  it("hold their defaults", () => {
    expect(MODEL_DTYPES).toContain(DEFAULT_DTYPE);
    expect(WEIGHT_QUANTS).toContain(DEFAULT_WEIGHT_QUANT);
    expect(DELTA_MODES).toContain(DEFAULT_DELTA_MODE);
    expect(FUSED_OPS).toEqual(["none", "contrib"]);
    expect(DEFAULT_FUSED_OPS).toBe("none");
    expect(EXECUTION_PROVIDERS).toEqual(["cpu", "cuda", "webgpu"]);
    expect(CHOICE_SCORINGS).toEqual(["shared-cache", "batched"]);
    expect(DEFAULT_CHOICE_SCORING).toBe("shared-cache");
    expect(isValidQuantBlockSize(DEFAULT_QUANT_BLOCK_SIZE)).toBe(true);
    expect([8, 24, 16.5].map(isValidQuantBlockSize)).toEqual([false, false, false]);
    expect(formatChoices(WEIGHT_QUANTS)).toBe('"none", "int8" or "int4"');
  });

  it("buildOnnxModel checks its options against them before reading anything", async () => {
    const opts = { modelDir: "/no/such/model", outDir: "/no/such/out" };
    await expect(buildOnnxModel({ ...opts, weightQuant: "int2" as never })).rejects.toThrow(
      /weightQuant must be "none", "int8" or "int4", got "int2"/,
    );
    await expect(buildOnnxModel({ ...opts, dtype: "bf16" as never })).rejects.toThrow(
      /dtype must be "fp32" or "fp16"/,
    );
    await expect(buildOnnxModel({ ...opts, fusedOps: "cuda" as never })).rejects.toThrow(
      /fusedOps must be "none" or "contrib", got "cuda"/,
    );
    await expect(buildOnnxModel({ ...opts, quantBlockSize: 24 })).rejects.toThrow(
      /quantBlockSize must be a power of two ≥ 16, got 24/,
    );
  });
});

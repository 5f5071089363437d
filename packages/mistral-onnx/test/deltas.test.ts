import { join } from "node:path";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DELTA_PROJECTIONS,
  type DeltaSource,
  FUSED_OPS,
  foldDelta,
  isDeltaTarget,
  type WeightDelta,
} from "../src/index.js";
import {
  buildAndOpen,
  FIXTURES,
  type LogitsReference,
  maxDiffValid,
  readLogitsReference,
} from "./helpers.js";

const LORA_DIR = join(FIXTURES, "mistral", "lora");
const SCALE = 8 / 4; // lora_alpha / r from adapter_config.json

/** The PEFT adapter's modules as low-rank deltas, scale folded into B (ΔW = scale·B·A). */
async function loraDeltas(): Promise<
  Map<string, { A: Float32Array; B: Float32Array; rank: number }>
> {
  const ck = await SafetensorsCheckpoint.open(join(LORA_DIR, "adapter_model.safetensors"));
  const out = new Map<string, { A: Float32Array; B: Float32Array; rank: number }>();
  for (const name of ck.names()) {
    const m = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(name);
    if (!m) continue;
    const module = m[1] as string;
    const A = await ck.readF32(name);
    const B = await ck.readF32(name.replace("lora_A", "lora_B"));
    const rank = ck.info(name).shape[0] as number;
    out.set(module, { A, B: B.map((x) => x * SCALE), rank });
  }
  await ck.close();
  return out;
}

function source(map: Map<string, WeightDelta>): DeltaSource & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    get: async (module) => {
      asked.push(module);
      return map.get(module);
    },
  };
}

describe("weight deltas (mistral + random PEFT LoRA)", () => {
  let lora: Map<string, { A: Float32Array; B: Float32Array; rank: number }>;
  let ref: LogitsReference;
  const V = 986;

  beforeAll(async () => {
    lora = await loraDeltas();
    ref = await readLogitsReference(join(LORA_DIR, "reference.safetensors"));
  });

  const lowrank = () =>
    new Map<string, WeightDelta>([...lora].map(([k, v]) => [k, { kind: "lowrank", ...v }]));

  it("the adapter covers all 7 projections of both layers and changes the logits", async () => {
    expect(lora.size).toBe(14);
    const base = await buildAndOpen("mistral");
    try {
      const got = await base.runner.logits(ref.rows);
      expect(maxDiffValid(got, ref.logits, ref.mask, V)).toBeGreaterThan(0.05);
    } finally {
      await base.cleanup();
    }
  });

  const modes = (["fold", "side-branch"] as const).flatMap((mode) =>
    FUSED_OPS.map((fusedOps) => [mode, fusedOps] as const),
  );
  for (const [mode, fusedOps] of modes) {
    describe(`${mode}, fusedOps ${fusedOps}`, () => {
      let r: Awaited<ReturnType<typeof buildAndOpen>>;
      const src = source(new Map());
      beforeAll(async () => {
        const s = source(lowrank());
        r = await buildAndOpen("mistral", { deltas: s, deltaMode: mode, fusedOps });
        src.asked.push(...s.asked);
      });
      afterAll(() => r.cleanup());

      it("asks the source for every projection exactly once", () => {
        expect(src.asked).toHaveLength(14);
        expect(new Set(src.asked).size).toBe(14);
      });

      it("asks exactly for model.layers.N.<DELTA_PROJECTIONS>, all of which isDeltaTarget accepts", () => {
        const expected = [0, 1].flatMap((l) =>
          DELTA_PROJECTIONS.map((suffix) => `model.layers.${l}.${suffix}`),
        );
        expect([...src.asked].sort()).toEqual(expected.sort());
        expect(src.asked.every(isDeltaTarget)).toBe(true);
        // The PEFT adapter targets the same module names.
        expect([...lora.keys()].sort()).toEqual(expected.sort());
      });

      it("logits equal transformers + PEFT with the LoRA applied", async () => {
        const got = await r.runner.logits(ref.rows);
        expect(maxDiffValid(got, ref.logits, ref.mask, V)).toBeLessThanOrEqual(1e-4);
      });
    });
  }

  it("a dense delta (B·A formed outside) folds to the same logits", async () => {
    const dense = new Map<string, WeightDelta>();
    for (const [k, v] of lora) {
      const out = v.B.length / v.rank;
      const inF = v.A.length / v.rank;
      const d = new Float32Array(out * inF);
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inF; i++) {
          let s = 0;
          for (let q = 0; q < v.rank; q++)
            s += (v.B[o * v.rank + q] as number) * (v.A[q * inF + i] as number);
          d[o * inF + i] = s;
        }
      dense.set(k, { kind: "dense", delta: d });
    }
    const r = await buildAndOpen("mistral", { deltas: source(dense), deltaMode: "side-branch" });
    try {
      const got = await r.runner.logits(ref.rows);
      expect(maxDiffValid(got, ref.logits, ref.mask, V)).toBeLessThanOrEqual(1e-4);
    } finally {
      await r.cleanup();
    }
  });

  it("isDeltaTarget accepts only model.layers.N.<projection>", () => {
    expect(DELTA_PROJECTIONS).toEqual([
      "self_attn.q_proj",
      "self_attn.k_proj",
      "self_attn.v_proj",
      "self_attn.o_proj",
      "mlp.gate_proj",
      "mlp.up_proj",
      "mlp.down_proj",
    ]);
    expect(isDeltaTarget("model.layers.0.self_attn.q_proj")).toBe(true);
    expect(isDeltaTarget("model.layers.31.mlp.down_proj")).toBe(true);
    for (const bad of [
      "model.embed_tokens",
      "lm_head",
      "model.norm",
      "model.layers.0.input_layernorm",
      "model.layers.0.self_attn.qkv_proj",
      "model.layers.0.mlp.gate_up_proj",
      "model.layers.x.self_attn.q_proj",
      "model.layers.01.self_attn.q_proj",
      "layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.q_proj.weight",
      "base_model.model.model.layers.0.self_attn.q_proj",
    ])
      expect(isDeltaTarget(bad), bad).toBe(false);
  });

  it("foldDelta: low-rank fold equals the dense product", () => {
    const out = 3;
    const inF = 5;
    const rank = 2;
    const A = Float32Array.from({ length: rank * inF }, (_, i) => Math.sin(i + 1));
    const B = Float32Array.from({ length: out * rank }, (_, i) => Math.cos(i + 2));
    const w1 = new Float32Array(out * inF).fill(0.5);
    foldDelta(w1, { kind: "lowrank", A, B, rank }, out, inF);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inF; i++) {
        let s = 0.5;
        for (let q = 0; q < rank; q++)
          s += (B[o * rank + q] as number) * (A[q * inF + i] as number);
        expect(w1[o * inF + i]).toBeCloseTo(s, 6);
      }
  });
});

import { join } from "node:path";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { describe, expect, it } from "vitest";
import { dequantizeBlockwise, quantizeBlockwise, type WeightDelta } from "../src/index.js";
import { buildAndOpen, FIXTURES, maxDiffValid, readLogitsReference } from "./helpers.js";

describe("block-wise weight quantization (MatMulNBits layout)", () => {
  it.each([8, 4] as const)(
    "int%i round trip: error ≤ half a step per block; odd K is padded",
    (bits) => {
      const n = 5;
      const k = 70; // not a multiple of the block size
      const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
      const q = quantizeBlockwise(w, n, k, bits, 32);
      expect(q.data.length).toBe((n * 3 * (32 * bits)) / 8);
      const d = dequantizeBlockwise(q);
      for (let r = 0; r < n; r++)
        for (let i = 0; i < k; i++) {
          const scale = q.scales[r * 3 + Math.floor(i / 32)] as number;
          expect(Math.abs((d[r * k + i] as number) - (w[r * k + i] as number))).toBeLessThanOrEqual(
            scale / 2 + 1e-6,
          );
        }
    },
  );

  it.each([
    ["int8", 8],
    ["int4", 4],
  ] as const)(
    "%s MatMulNBits (float activations) equals the fp32 graph with the dequantized weights folded in",
    async (quant, bits) => {
      const dir = join(FIXTURES, "mistral");
      const ref = await readLogitsReference(join(dir, "reference.safetensors"));
      const ck = await SafetensorsCheckpoint.open(dir);
      // Independent path: the dequantized weights enter as dense deltas on the plain MatMul graph.
      const deltas = {
        get: async (m: string): Promise<WeightDelta> => {
          const w = await ck.readF32(`${m}.weight`);
          const [n, k] = ck.info(`${m}.weight`).shape as [number, number];
          const d = dequantizeBlockwise(quantizeBlockwise(w, n, k, bits, 32));
          return { kind: "dense", delta: d.map((x, i) => x - (w[i] as number)) };
        },
      };
      const folded = await buildAndOpen("mistral", { deltas });
      const quantized = await buildAndOpen("mistral", {
        weightQuant: quant,
        quantBlockSize: 32,
        quantAccuracyLevel: 0,
        quantizeLmHead: false,
      });
      try {
        const a = await folded.runner.logits(ref.rows);
        const b = await quantized.runner.logits(ref.rows);
        expect(maxDiffValid(a, b, ref.mask, 986)).toBeLessThanOrEqual(1e-4);
        // and the quantization did change the model
        expect(maxDiffValid(b, ref.logits, ref.mask, 986)).toBeGreaterThan(1e-3);
      } finally {
        await ck.close();
        await folded.cleanup();
        await quantized.cleanup();
      }
    },
  );
});

describe("fp16 build", () => {
  it("runs on the CPU provider and stays close to the fp32 reference", async () => {
    const ref = await readLogitsReference(join(FIXTURES, "mistral", "reference.safetensors"));
    const r = await buildAndOpen("mistral", { dtype: "fp16" });
    try {
      const got = await r.runner.logits(ref.rows);
      const d = maxDiffValid(got, ref.logits, ref.mask, 986);
      expect(d).toBeGreaterThan(0); // it really ran in half precision
      expect(d).toBeLessThanOrEqual(0.05);
    } finally {
      await r.cleanup();
    }
  });
});

import { open } from "node:fs/promises";
import { Rng } from "@merge/lora";
import { type BenchLayout, factorFileBytes, factorOffset, MISTRAL_MODULES } from "./shapes.js";

/**
 * Writes synthetic LoRA factors for the layout (Float32 LE, see shapes.ts): A ~ U(−1, 1)/√in as
 * PEFT's Kaiming-uniform init, B ~ U(−0.01, 0.01) as a trained B of small norm. Seeded.
 */
export async function makeFactors(path: string, layout: BenchLayout, seed = 1): Promise<void> {
  const fh = await open(path, "w");
  try {
    const rng = new Rng(seed);
    for (let layer = 0; layer < layout.layers; layer++) {
      for (let mi = 0; mi < MISTRAL_MODULES.length; mi++) {
        const m = MISTRAL_MODULES[mi]!;
        for (let e = 0; e < layout.experts; e++) {
          const a = new Float32Array(layout.rank * m.in);
          const b = new Float32Array(m.out * layout.rank);
          const sa = 2 / Math.sqrt(m.in);
          for (let i = 0; i < a.length; i++) a[i] = (rng.nextFloat() - 0.5) * sa;
          for (let i = 0; i < b.length; i++) b[i] = (rng.nextFloat() - 0.5) * 0.02;
          const off = factorOffset(layout, layer, mi, e);
          await fh.write(new Uint8Array(a.buffer), 0, a.byteLength, off);
          await fh.write(new Uint8Array(b.buffer), 0, b.byteLength, off + a.byteLength);
        }
      }
    }
    await fh.truncate(factorFileBytes(layout));
  } finally {
    await fh.close();
  }
}

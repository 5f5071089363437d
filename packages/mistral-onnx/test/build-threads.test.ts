import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { f32ToF16, SafetensorsCheckpoint } from "@merge/tensor-io";
import { afterAll, describe, expect, it } from "vitest";
import { PooledEncoder } from "../src/encode/encoder.js";
import { f32BitsToF16 } from "../src/encode/kernels.js";
import {
  buildOnnxModel,
  type DeltaSource,
  type ModelDtype,
  MistralOnnxError,
  ONNX_DATA_FILE,
  ONNX_FILE,
  quantizeBlockwise,
  type WeightDelta,
  type WeightQuant,
} from "../src/index.js";
import { FIXTURES } from "./helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "mistral-onnx-threads-"));
  dirs.push(d);
  return d;
}

/** A fixed rank-2 delta on some modules of `modelDir`, so folding is part of the build too. */
function deltasFor(modelDir: string): DeltaSource {
  return {
    async get(module: string): Promise<WeightDelta | undefined> {
      if (!/(q_proj|v_proj|down_proj)$/.test(module)) return undefined;
      const ck = await SafetensorsCheckpoint.open(modelDir);
      const [out, inF] = ck.info(`${module}.weight`).shape as [number, number];
      await ck.close();
      const rank = 2;
      const A = Float32Array.from({ length: rank * inF }, (_, i) => Math.sin(i + module.length));
      const B = Float32Array.from({ length: out * rank }, (_, i) => 0.01 * Math.cos(i));
      return { kind: "lowrank", A, B, rank };
    },
  };
}

async function buildBytes(
  modelDir: string,
  options: { dtype: ModelDtype; weightQuant: WeightQuant; buildThreads: number },
): Promise<{ onnx: Buffer; data: Buffer; progress: string[] }> {
  const outDir = await tmp();
  const progress: string[] = [];
  await buildOnnxModel({
    modelDir,
    outDir,
    deltas: deltasFor(modelDir),
    ...options,
    onProgress: (done, total, what) => progress.push(`${done}/${total} ${what}`),
  });
  return {
    onnx: await readFile(join(outDir, ONNX_FILE)),
    data: await readFile(join(outDir, ONNX_DATA_FILE)),
    progress,
  };
}

describe("buildThreads: worker threads write the same model as one thread", () => {
  it.each([
    ["mistral", "fp32", "none"],
    ["mistral", "fp16", "none"],
    ["mistral", "fp16", "int4"],
    ["mistral", "fp32", "int8"],
    ["llama", "fp32", "int4"],
  ] as const)(
    "%s %s %s: .onnx and .onnx.data byte-identical, same progress",
    async (kind, dtype, weightQuant) => {
      const modelDir = join(FIXTURES, kind);
      const one = await buildBytes(modelDir, { dtype, weightQuant, buildThreads: 1 });
      const many = await buildBytes(modelDir, { dtype, weightQuant, buildThreads: 3 });
      expect(one.data.length).toBeGreaterThan(0);
      expect(many.onnx.equals(one.onnx)).toBe(true);
      expect(many.data.equals(one.data)).toBe(true);
      expect(many.progress).toEqual(one.progress);
      expect(one.progress.at(-1)).toMatch(/^(\d+)\/\1 lm_head$/);
    },
  );

  it.each([0, -1, 1.5, Number.NaN])("rejects buildThreads %s", async (buildThreads) => {
    const p = buildOnnxModel({
      modelDir: join(FIXTURES, "mistral"),
      outDir: await tmp(),
      buildThreads,
    });
    await expect(p).rejects.toBeInstanceOf(MistralOnnxError);
    await expect(p).rejects.toThrow(/buildThreads must be an integer ≥ 1/);
  });
});

describe("pooled weight encoder", () => {
  /** Values that hit every branch of the conversions and of the quantizer's clamping. */
  function awkward(n: number): Float32Array {
    const w = new Float32Array(n);
    let s = 7;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      w[i] = (s / 2 ** 32 - 0.5) * 10 ** ((i % 13) - 8);
    }
    const special = [
      0,
      -0,
      65504,
      65519,
      65520,
      -65520,
      1e5,
      6e-8,
      3e-8,
      1e-30,
      Infinity,
      -Infinity,
      Number.NaN,
    ];
    special.forEach((v, i) => {
      w[i * 31] = v;
    });
    return w;
  }

  it("f32BitsToF16 gives @merge/tensor-io's f32ToF16 bits for every exponent and random mantissas", () => {
    const bits = new Uint32Array(1 << 20);
    let s = 1;
    for (let i = 0; i < bits.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      // Every (sign, exponent) pair, mantissas random, plus the round-half cases (low 13 bits 0x1000).
      const mant = i & 1 ? (s & 0x7fe000) | 0x1000 : s & 0x7fffff;
      bits[i] = (((i >>> 1) & 0x1ff) << 23) | mant;
    }
    const ref = f32ToF16(new Float32Array(bits.buffer));
    let mismatches = 0;
    for (let i = 0; i < bits.length; i++)
      if (f32BitsToF16(bits[i] as number) !== ref[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  it("splits odd shapes over threads with the same bytes as quantizeBlockwise", async () => {
    const pool = new PooledEncoder(3);
    try {
      for (const [n, k, bits, block] of [
        [7, 70, 4, 32],
        [5, 129, 8, 16],
        [1, 256, 4, 128],
      ] as const) {
        const w = awkward(n * k);
        const ref = quantizeBlockwise(w, n, k, bits, block);
        const got = await pool.quantized(w, n, k, bits, block);
        expect(Buffer.from(got.data).equals(Buffer.from(ref.data))).toBe(true);
        expect(Buffer.from(got.scales.buffer).equals(Buffer.from(ref.scales.buffer))).toBe(true);
      }
      const w = awkward(3 * 5);
      const t16 = new Uint16Array((await pool.transposed(w, 3, 5, "fp16")).slice().buffer);
      const ref16 = f32ToF16(
        Float32Array.from({ length: 15 }, (_, i) => w[(i % 3) * 5 + Math.floor(i / 3)] as number),
      );
      expect([...t16]).toEqual([...ref16]);
    } finally {
      await pool.close();
    }
  });
});

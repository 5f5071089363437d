import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  PeftAdapter,
  PeftAdapterError,
  SafetensorsFile,
  bf16ToF32,
  f32ToBf16,
  writePeftAdapter,
  writeSafetensors,
} from "../src/index.js";
import { FIXTURES, readJson, seededRandom, sha256, withTempDir } from "./helpers.js";

const PY = join(FIXTURES, "python");

interface ExpectedModule {
  rank: number;
  alpha: number;
  scaling: number;
  aShape: [number, number];
  bShape: [number, number];
  A_f32_sha256: string;
  B_f32_sha256: string;
  A_first: number[];
}

describe("PeftAdapter reads Python peft's save_pretrained output bit-exactly", () => {
  it("config fields, canonical module names, ranks/alphas after patterns, factor bits", async () => {
    const expected = await readJson<{
      config: Record<string, unknown>;
      modules: Record<string, ExpectedModule>;
    }>(join(PY, "peft-adapter.expected.json"));
    const adapter = await PeftAdapter.open(join(PY, "peft-adapter"));
    try {
      expect(adapter.config).toMatchObject({
        r: expected.config.r,
        loraAlpha: expected.config.lora_alpha,
        targetModules: expected.config.target_modules,
        useRslora: false,
        fanInFanOut: false,
        rankPattern: expected.config.rank_pattern,
        alphaPattern: expected.config.alpha_pattern,
        modulesToSave: null,
        baseModelNameOrPath: null,
      });
      expect(adapter.config.raw).toEqual(expected.config);
      expect(adapter.modules()).toEqual(Object.keys(expected.modules).sort());
      for (const [module, e] of Object.entries(expected.modules)) {
        const m = await adapter.readModule(module);
        expect(m.module).toBe(module);
        // rank/alpha are PEFT's own per-layer values (rank_pattern / alpha_pattern applied by peft).
        expect([m.rank, m.alpha]).toEqual([e.rank, e.alpha]);
        expect(m.alpha / m.rank).toBeCloseTo(e.scaling, 12);
        expect(m.aShape).toEqual(e.aShape);
        expect(m.bShape).toEqual(e.bShape);
        expect(sha256(m.A), `${module} A`).toBe(e.A_f32_sha256);
        expect(sha256(m.B), `${module} B`).toBe(e.B_f32_sha256);
        expect(Array.from(m.A.subarray(0, 4))).toEqual(e.A_first.map(Math.fround));
      }
    } finally {
      await adapter.close();
    }
  });

  it("normalises keys with an adapter-name segment (.lora_A.default.weight), stored in BF16", async () => {
    const expected = await readJson<{
      modules: Record<string, { A_f32_sha256: string; B_f32_sha256: string }>;
    }>(join(PY, "peft-adapter-named-bf16.expected.json"));
    const adapter = await PeftAdapter.open(join(PY, "peft-adapter-named-bf16"));
    try {
      expect(adapter.modules()).toEqual(Object.keys(expected.modules).sort());
      for (const [module, e] of Object.entries(expected.modules)) {
        const m = await adapter.readModule(module);
        expect(sha256(m.A)).toBe(e.A_f32_sha256);
        expect(sha256(m.B)).toBe(e.B_f32_sha256);
      }
    } finally {
      await adapter.close();
    }
  });

  it("refuses a pickle (.bin) adapter and says why", async () => {
    const error = await PeftAdapter.open(join(PY, "peft-adapter-bin")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PeftAdapterError);
    expect((error as PeftAdapterError).file).toBe(
      join(PY, "peft-adapter-bin", "adapter_model.bin"),
    );
    expect((error as Error).message).toMatch(/pickle.*not loaded.*arbitrary code/);
    expect((error as Error).message).toMatch(/save_file/);
  });

  it("names an absent module", async () => {
    const adapter = await PeftAdapter.open(join(PY, "peft-adapter"));
    try {
      await expect(adapter.readModule("model.layers.9.mlp.up_proj")).rejects.toBeInstanceOf(
        PeftAdapterError,
      );
      expect(() => adapter.moduleInfo("model.layers.9.mlp.up_proj")).toThrow(PeftAdapterError);
      expect(adapter.hasModule("model.layers.9.mlp.up_proj")).toBe(false);
    } finally {
      await adapter.close();
    }
  });

  it("moduleInfo gives each module's rank, alpha and shapes without reading data", async () => {
    const adapter = await PeftAdapter.open(join(PY, "peft-adapter"));
    try {
      for (const module of adapter.modules()) {
        const { A, B, ...rest } = await adapter.readModule(module);
        expect(adapter.moduleInfo(module)).toEqual(rest);
        expect(adapter.hasModule(module)).toBe(true);
        expect(A.length).toBe(rest.aShape[0] * rest.aShape[1]);
        expect(B.length).toBe(rest.bShape[0] * rest.bShape[1]);
      }
    } finally {
      await adapter.close();
    }
  });
});

/** A copy of the Python adapter with its tensors and/or config changed. */
async function variant(
  dir: string,
  edit: {
    tensors?: (t: Map<string, { dtype: "F32"; shape: number[]; data: Uint8Array }>) => void;
    config?: (c: Record<string, unknown>) => void;
  },
): Promise<string> {
  await cp(join(PY, "peft-adapter"), dir, { recursive: true });
  const file = await SafetensorsFile.open(join(dir, "adapter_model.safetensors"));
  const tensors = new Map<string, { dtype: "F32"; shape: number[]; data: Uint8Array }>();
  for (const [name, info] of file.tensors) {
    tensors.set(name, { dtype: "F32", shape: info.shape, data: await file.readBytes(name) });
  }
  await file.close();
  edit.tensors?.(tensors);
  await writeSafetensors(
    join(dir, "adapter_model.safetensors"),
    [...tensors].map(([name, t]) => ({ name, ...t })),
  );
  const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8")) as Record<
    string,
    unknown
  >;
  edit.config?.(config);
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config));
  return dir;
}

describe("PeftAdapter rejects inconsistent adapters with a PeftAdapterError naming file and tensor", () => {
  const qA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  const qB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
  const cases: Array<[string, Parameters<typeof variant>[1], RegExp, string | undefined]> = [
    [
      "missing lora_B",
      { tensors: (t) => t.delete(qB) },
      /lora_B is missing for module model\.layers\.0\.self_attn\.q_proj/,
      qA,
    ],
    ["missing lora_A", { tensors: (t) => t.delete(qA) }, /lora_A is missing/, qB],
    [
      "rank disagreeing with r",
      { config: (c) => (c.r = 5) },
      /rank 5/,
      "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight",
    ],
    [
      "rank_pattern disagreeing with the stored rank",
      { config: (c) => (c.rank_pattern = {}) },
      /rank 4/,
      "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
    ],
    [
      "A/B inner dimension mismatch",
      {
        tensors: (t) => {
          const b = t.get(qB)!;
          t.set(qB, { dtype: "F32", shape: [8, 8], data: new Uint8Array(8 * 8 * 4) });
          void b;
        },
      },
      /lora_B has 8 columns/,
      qB,
    ],
    [
      "3-D factor",
      { tensors: (t) => t.set(qA, { dtype: "F32", shape: [4, 16, 1], data: t.get(qA)!.data }) },
      /2-D/,
      qA,
    ],
    [
      "embedding LoRA",
      {
        tensors: (t) =>
          t.set("base_model.model.model.embed_tokens.lora_embedding_A", {
            dtype: "F32",
            shape: [1],
            data: new Uint8Array(4),
          }),
      },
      /embedding LoRA/,
      "base_model.model.model.embed_tokens.lora_embedding_A",
    ],
    ["DoRA config", { config: (c) => (c.use_dora = true) }, /DoRA/, undefined],
    ["non-LoRA peft_type", { config: (c) => (c.peft_type = "IA3") }, /only LORA/, undefined],
    ["bad r", { config: (c) => (c.r = "four") }, /r must be a positive integer/, undefined],
    ["bad target_modules", { config: (c) => (c.target_modules = 3) }, /target_modules/, undefined],
  ];
  for (const [what, edit, message, tensor] of cases) {
    it(what, async () => {
      await withTempDir(async (dir) => {
        await variant(dir, edit);
        const error = await PeftAdapter.open(dir).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PeftAdapterError);
        expect((error as Error).message).toMatch(message);
        expect((error as PeftAdapterError).tensor).toBe(tensor);
        expect((error as PeftAdapterError).file.startsWith(dir)).toBe(true);
      });
    });
  }

  it("keeps non-LoRA tensors (modules_to_save weights) out of modules()", async () => {
    await withTempDir(async (dir) => {
      await variant(dir, {
        tensors: (t) =>
          t.set("base_model.model.lm_head.weight", {
            dtype: "F32",
            shape: [2],
            data: new Uint8Array(8),
          }),
      });
      const adapter = await PeftAdapter.open(dir);
      try {
        expect(adapter.otherTensors()).toEqual(["base_model.model.lm_head.weight"]);
        expect(adapter.modules()).not.toContain("lm_head");
      } finally {
        await adapter.close();
      }
    });
  });

  it("a folder without adapter_config.json", async () => {
    await withTempDir(async (dir) => {
      await expect(PeftAdapter.open(dir)).rejects.toMatchObject({ name: "PeftAdapterError" });
    });
  });
});

function randomModule(module: string, r: number, inF: number, outF: number, rand: () => number) {
  const fill = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
  return {
    module,
    A: fill(r * inF),
    aShape: [r, inF] as [number, number],
    B: fill(outF * r),
    bShape: [outF, r] as [number, number],
  };
}

describe("writePeftAdapter", () => {
  it("round-trips through PeftAdapter (F32 exact, BF16 = rounded values)", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(5);
      const modules = [
        randomModule("model.layers.0.self_attn.q_proj", 4, 16, 16, rand),
        randomModule("model.layers.0.mlp.down_proj", 4, 32, 16, rand),
      ];
      for (const dtype of ["F32", "BF16"] as const) {
        const out = join(dir, dtype);
        await writePeftAdapter(out, {
          config: {
            r: 4,
            loraAlpha: 8,
            targetModules: ["q_proj", "down_proj"],
            baseModelNameOrPath: "tiny",
          },
          modules,
          dtype,
        });
        const adapter = await PeftAdapter.open(out);
        try {
          expect(adapter.modules()).toEqual(modules.map((m) => m.module).sort());
          expect(adapter.config.baseModelNameOrPath).toBe("tiny");
          for (const m of modules) {
            const got = await adapter.readModule(m.module);
            const expectA = dtype === "F32" ? m.A : bf16ToF32(f32ToBf16(m.A));
            expect(got.A).toEqual(expectA);
            expect(got.bShape).toEqual(m.bShape);
            expect([got.rank, got.alpha]).toEqual([4, 8]);
          }
        } finally {
          await adapter.close();
        }
      }
    });
  });

  it("records differing per-module ranks and alphas as exact-name patterns, first", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(6);
      await writePeftAdapter(dir, {
        config: {
          r: 4,
          loraAlpha: 8,
          targetModules: "model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj",
          rankPattern: { q_proj: 4 },
        },
        modules: [
          { ...randomModule("model.layers.0.self_attn.q_proj", 6, 8, 8, rand), alpha: 6 },
          randomModule("model.layers.1.self_attn.q_proj", 4, 8, 8, rand),
          randomModule("model.layers.1.self_attn.v_proj", 2, 8, 8, rand),
        ],
      });
      const config = await readJson<{
        rank_pattern: Record<string, number>;
        alpha_pattern: Record<string, number>;
      }>(join(dir, "adapter_config.json"));
      expect(Object.keys(config.rank_pattern)[0]).toBe("model\\.layers\\.0\\.self_attn\\.q_proj");
      const adapter = await PeftAdapter.open(dir);
      try {
        const ranks = await Promise.all(
          adapter
            .modules()
            .map(async (m) => [
              (await adapter.readModule(m)).rank,
              (await adapter.readModule(m)).alpha,
            ]),
        );
        expect(ranks).toEqual([
          [6, 6],
          [4, 8],
          [2, 8],
        ]);
      } finally {
        await adapter.close();
      }
      expect(config.alpha_pattern).toEqual({ "model\\.layers\\.0\\.self_attn\\.q_proj": 6 });
    });
  });

  it("rejects modules outside target_modules, bad shapes and duplicates", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(7);
      const q = randomModule("model.layers.0.self_attn.q_proj", 2, 4, 4, rand);
      const base = { r: 2, loraAlpha: 2, targetModules: ["q_proj"] };
      await expect(
        writePeftAdapter(dir, {
          config: base,
          modules: [randomModule("model.layers.0.mlp.up_proj", 2, 4, 4, rand)],
        }),
      ).rejects.toThrow(/not matched by target_modules/);
      await expect(
        writePeftAdapter(dir, { config: base, modules: [{ ...q, aShape: [2, 5] }] }),
      ).rejects.toBeInstanceOf(PeftAdapterError);
      await expect(
        writePeftAdapter(dir, {
          config: base,
          modules: [{ ...q, bShape: [8, 1], B: new Float32Array(8) }],
        }),
      ).rejects.toThrow(/ranks must match/);
      await expect(writePeftAdapter(dir, { config: base, modules: [q, q] })).rejects.toThrow(
        /twice/,
      );
      await expect(
        writePeftAdapter(dir, {
          config: base,
          modules: [{ ...q, module: "base_model.model.x.q_proj" }],
        }),
      ).rejects.toThrow(/canonical/);
    });
  });
});

describe("target_modules is enforced as PEFT does (issue 11 D4)", () => {
  it("factors for modules target_modules does not name are ignored and listed, not merged", async () => {
    await withTempDir(async (dir) => {
      const all = await PeftAdapter.open(join(PY, "peft-adapter"));
      const before = all.modules();
      await all.close();
      const q = before.filter((m) => m.endsWith(".q_proj"));
      expect(q.length).toBeGreaterThan(0);
      expect(before.length).toBeGreaterThan(q.length);
      await variant(dir, {
        config: (c) => {
          c.target_modules = ["q_proj"];
        },
      });
      const adapter = await PeftAdapter.open(dir);
      try {
        expect(adapter.modules()).toEqual(q);
        expect(adapter.ignoredModules()).toEqual(before.filter((m) => !m.endsWith(".q_proj")));
        expect(adapter.hasModule(before.find((m) => !m.endsWith(".q_proj"))!)).toBe(false);
      } finally {
        await adapter.close();
      }
    });
  });

  it("a regex target_modules string must match the whole module name; all-linear keeps all", async () => {
    await withTempDir(async (dir) => {
      await variant(dir, {
        config: (c) => {
          c.target_modules = ".*\\.self_attn\\.(q|v)_proj";
        },
      });
      const adapter = await PeftAdapter.open(dir);
      try {
        expect(adapter.modules().every((m) => /self_attn\.(q|v)_proj$/.test(m))).toBe(true);
        expect(adapter.modules().length).toBeGreaterThan(0);
      } finally {
        await adapter.close();
      }
    });
    await withTempDir(async (dir) => {
      await variant(dir, {
        config: (c) => {
          c.target_modules = "all-linear";
        },
      });
      const adapter = await PeftAdapter.open(dir);
      try {
        expect(adapter.ignoredModules()).toEqual([]);
      } finally {
        await adapter.close();
      }
    });
  });
});

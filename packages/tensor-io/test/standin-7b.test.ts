// tools/standin-7b/make_standin.py (the Mistral-7B stand-in) at toy size, read back with
// SafetensorsCheckpoint and PeftAdapter. Needs a Python with torch (STANDIN_PYTHON, else
// <repo>/.venv/bin/python, else python3): skipped otherwise, as on CI. The tokenizer comparison
// with mistral-tokenizer-js also needs that package (MISTRAL_TOKENIZER_JS=path to its
// mistral-tokenizer.js, or resolvable from the repo) and the Python `tokenizers` package.
import { spawnSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PeftAdapter, SafetensorsCheckpoint } from "../src/index.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const TOOL = join(REPO, "tools", "standin-7b");

function findPython(): string | undefined {
  const candidates = [process.env.STANDIN_PYTHON, join(REPO, ".venv", "bin", "python"), "python3"];
  for (const py of candidates) {
    if (!py || (py.includes("/") && !existsSync(py))) continue;
    const r = spawnSync(py, ["-c", "import torch, safetensors"], { encoding: "utf8" });
    if (r.status === 0) return py;
  }
  return undefined;
}

function findMistralTokenizerJs(): string | undefined {
  const env = process.env.MISTRAL_TOKENIZER_JS;
  if (env) return existsSync(env) ? env : undefined;
  try {
    return createRequire(join(REPO, "package.json")).resolve("mistral-tokenizer-js");
  } catch {
    return undefined;
  }
}

const PYTHON = findPython();
const TOKENIZER_JS = findMistralTokenizerJs();
const hasTokenizers =
  PYTHON !== undefined && spawnSync(PYTHON, ["-c", "import tokenizers"]).status === 0;

// Toy sizes: head_dim stays 128, so hidden 512 gives 4 query heads and 1 key/value head.
const LAYERS = 2;
const VOCAB = 512;
const HIDDEN = 512;
const INTER = 1024;
const KV = 128;

describe.skipIf(PYTHON === undefined)(
  `make_standin.py at toy size${PYTHON === undefined ? " (skipped: no Python with torch; set STANDIN_PYTHON)" : ""}`,
  () => {
    let out = "";

    beforeAll(async () => {
      out = await mkdtemp(join(tmpdir(), "standin-7b-test-"));
      const args = [
        join(TOOL, "make_standin.py"),
        ...["--out", out, "--layers", String(LAYERS), "--vocab-size", String(VOCAB)],
        ...["--hidden-size", String(HIDDEN), "--intermediate-size", String(INTER)],
        // a small shard size, so the toy model is sharded like the real one
        ...["--shard-size", "1MB", "--seed", "3"],
      ];
      const r = spawnSync(PYTHON!, args, { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`make_standin.py failed:\n${r.stdout}\n${r.stderr}`);
    });
    afterAll(async () => {
      if (out) await rm(out, { recursive: true, force: true });
    });

    it("writes Mistral's config with the requested toy overrides", async () => {
      const cfg = JSON.parse(await readFile(join(out, "base", "config.json"), "utf8"));
      expect(cfg).toMatchObject({
        architectures: ["MistralForCausalLM"],
        model_type: "mistral",
        num_hidden_layers: LAYERS,
        vocab_size: VOCAB,
        hidden_size: HIDDEN,
        intermediate_size: INTER,
        num_attention_heads: 4,
        num_key_value_heads: 1,
        head_dim: 128,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-5,
        sliding_window: 4096,
        max_position_embeddings: 32768,
        tie_word_embeddings: false,
        torch_dtype: "bfloat16",
        bos_token_id: 1,
        eos_token_id: 2,
      });
    });

    it("shards bf16 weights under transformers' MistralForCausalLM names", async () => {
      const base = join(out, "base");
      const index = JSON.parse(await readFile(join(base, "model.safetensors.index.json"), "utf8"));
      const shards = new Set(Object.values(index.weight_map as Record<string, string>));
      expect(shards.size).toBeGreaterThan(1);
      for (const s of shards) expect(s).toMatch(/^model-\d{5}-of-\d{5}\.safetensors$/);

      const ckpt = await SafetensorsCheckpoint.open(base);
      try {
        const expected: Record<string, number[]> = {
          "model.embed_tokens.weight": [VOCAB, HIDDEN],
          "model.norm.weight": [HIDDEN],
          "lm_head.weight": [VOCAB, HIDDEN],
        };
        for (let i = 0; i < LAYERS; i++) {
          const p = `model.layers.${i}.`;
          Object.assign(expected, {
            [`${p}self_attn.q_proj.weight`]: [HIDDEN, HIDDEN],
            [`${p}self_attn.k_proj.weight`]: [KV, HIDDEN],
            [`${p}self_attn.v_proj.weight`]: [KV, HIDDEN],
            [`${p}self_attn.o_proj.weight`]: [HIDDEN, HIDDEN],
            [`${p}mlp.gate_proj.weight`]: [INTER, HIDDEN],
            [`${p}mlp.up_proj.weight`]: [INTER, HIDDEN],
            [`${p}mlp.down_proj.weight`]: [HIDDEN, INTER],
            [`${p}input_layernorm.weight`]: [HIDDEN],
            [`${p}post_attention_layernorm.weight`]: [HIDDEN],
          });
        }
        expect(ckpt.names().sort()).toEqual(Object.keys(expected).sort());
        let total = 0;
        for (const [name, shape] of Object.entries(expected)) {
          const info = ckpt.info(name);
          expect(info.dtype, name).toBe("BF16");
          expect(info.shape, name).toEqual(shape);
          total += shape.reduce((a, b) => a * b, 1) * 2;
        }
        expect(index.metadata.total_size).toBe(total);

        const norm = await ckpt.readF32("model.layers.0.input_layernorm.weight");
        expect(norm.every((v) => v === 1)).toBe(true);
        const q = await ckpt.readF32("model.layers.0.self_attn.q_proj.weight");
        const mean = q.reduce((a, b) => a + b, 0) / q.length;
        const std = Math.sqrt(q.reduce((a, b) => a + (b - mean) ** 2, 0) / q.length);
        expect(Math.abs(mean)).toBeLessThan(1e-3);
        expect(std).toBeGreaterThan(0.019);
        expect(std).toBeLessThan(0.021);
      } finally {
        await ckpt.close();
      }
    });

    it("writes five r=8 q_proj/v_proj fp32 LoRA experts that PeftAdapter opens", async () => {
      for (let k = 1; k <= 5; k++) {
        const dir = join(out, "experts", `expert-${k}`);
        const adapter = await PeftAdapter.open(dir);
        try {
          expect(adapter.config.r).toBe(8);
          expect(adapter.config.loraAlpha).toBe(16);
          expect([...adapter.config.targetModules].sort()).toEqual(["q_proj", "v_proj"]);
          expect(adapter.config.baseModelNameOrPath).toBe(realpathSync(join(out, "base")));
          const modules = Array.from({ length: LAYERS }, (_, i) => [
            `model.layers.${i}.self_attn.q_proj`,
            `model.layers.${i}.self_attn.v_proj`,
          ]).flat();
          expect(adapter.modules().sort()).toEqual(modules.sort());
          expect(adapter.otherTensors()).toEqual([]);
          const q = adapter.moduleInfo("model.layers.0.self_attn.q_proj");
          expect(q).toMatchObject({ rank: 8, alpha: 16, aShape: [8, HIDDEN], bShape: [HIDDEN, 8] });
          const v = await adapter.readModule("model.layers.1.self_attn.v_proj");
          expect(v.aShape).toEqual([8, HIDDEN]);
          expect(v.bShape).toEqual([KV, 8]);
          expect(v.B.some((x) => x !== 0)).toBe(true);
        } finally {
          await adapter.close();
        }
      }
    });
  },
);

describe.skipIf(PYTHON === undefined || !hasTokenizers || TOKENIZER_JS === undefined)(
  `stand-in tokenizer.json vs mistral-tokenizer-js${
    TOKENIZER_JS === undefined
      ? " (skipped: mistral-tokenizer-js not found; set MISTRAL_TOKENIZER_JS)"
      : !hasTokenizers
        ? " (skipped: no Python with torch and tokenizers)"
        : ""
  }`,
  () => {
    it("encodes every test string to the same ids", () => {
      const r = spawnSync(
        PYTHON!,
        [join(TOOL, "check_tokenizer.py"), "--mistral-tokenizer-js", TOKENIZER_JS!],
        { encoding: "utf8" },
      );
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/(\d+)\/\1 strings match/);
    });
  },
);

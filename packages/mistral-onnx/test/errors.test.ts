import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { SafetensorsCheckpoint, writeSafetensors } from "@merge/tensor-io";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  buildOnnxModel,
  EXECUTION_PROVIDERS,
  MistralOnnxError,
  MistralRunner,
  GENERATION_ONNX_FILE,
  ONNX_DATA_FILE,
  ONNX_FILE,
  parseMistralConfig,
} from "../src/index.js";
import { cudaLibraryProblem } from "../src/session.js";
import { FIXTURES, tempDir } from "./helpers.js";

/** Whether onnxruntime-node's CUDA provider library was downloaded next to its binding. */
function cudaInstalled(): boolean {
  const bin = join(
    dirname(createRequire(import.meta.url).resolve("onnxruntime-node")),
    "..",
    "bin",
  );
  return readdirSync(bin, { recursive: true }).some((f) =>
    String(f).endsWith("libonnxruntime_providers_cuda.so"),
  );
}

function hasGcc(): boolean {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const MISTRAL = join(FIXTURES, "mistral");
const BASE_CONFIG = JSON.parse(await readFile(join(MISTRAL, "config.json"), "utf8")) as Record<
  string,
  unknown
>;
const baseConfig = () => structuredClone(BASE_CONFIG);

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A copy of the mistral fixture whose safetensors is rewritten by `edit`. */
async function editedModel(
  edit: (t: { name: string; dtype: "BF16"; shape: number[]; data: Uint8Array }[]) => void,
): Promise<string> {
  const t = await tempDir("bad");
  cleanups.push(t.cleanup);
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"])
    await copyFile(join(MISTRAL, f), join(t.dir, f));
  const ck = await SafetensorsCheckpoint.open(MISTRAL);
  const tensors = [];
  for (const name of ck.names()) {
    const info = ck.info(name);
    tensors.push({
      name,
      dtype: "BF16" as const,
      shape: info.shape,
      data: await ck.readBytes(name),
    });
  }
  await ck.close();
  edit(tensors);
  await writeSafetensors(join(t.dir, "model.safetensors"), tensors);
  return t.dir;
}

async function outDir(): Promise<string> {
  const t = await tempDir("out");
  cleanups.push(t.cleanup);
  return t.dir;
}

describe("config errors", () => {
  it("rejects an unsupported architecture, naming it", async () => {
    const raw = { ...baseConfig(), architectures: ["GPT2LMHeadModel"] };
    expect(() => parseMistralConfig(raw)).toThrow(MistralOnnxError);
    expect(() => parseMistralConfig(raw)).toThrow(/GPT2LMHeadModel/);
  });

  it.each([
    ["rope_parameters", { rope_type: "yarn", factor: 4, rope_theta: 10000 }],
    ["rope_scaling", { type: "dynamic", factor: 2 }],
  ])("rejects unsupported %s", async (key, value) => {
    const raw = { ...baseConfig(), rope_parameters: undefined, [key]: value };
    expect(() => parseMistralConfig(raw)).toThrow(/unsupported rope scaling type "(yarn|dynamic)"/);
  });

  it("accepts transformers-4 style rope_scaling linear", async () => {
    const raw = {
      ...baseConfig(),
      rope_parameters: undefined,
      rope_theta: 5e5,
      rope_scaling: { type: "linear", factor: 4 },
    };
    const c = parseMistralConfig(raw);
    expect(c.ropeLinearFactor).toBe(4);
    expect(c.ropeTheta).toBe(5e5);
  });

  it("rejects heads that do not group, and missing sizes", async () => {
    expect(() => parseMistralConfig({ ...baseConfig(), num_key_value_heads: 3 })).toThrow(
      /multiple of/,
    );
    expect(() => parseMistralConfig({ ...baseConfig(), hidden_size: undefined })).toThrow(
      /hidden_size/,
    );
  });

  it("rejects attention_bias", async () => {
    expect(() => parseMistralConfig({ ...baseConfig(), attention_bias: true })).toThrow(
      /attention_bias/,
    );
  });
});

describe("weight errors", () => {
  it("a missing weight is named, and nothing is left in outDir", async () => {
    const dir = await editedModel((ts) => {
      ts.splice(
        ts.findIndex((t) => t.name === "model.layers.1.mlp.up_proj.weight"),
        1,
      );
    });
    const out = await outDir();
    const p = buildOnnxModel({ modelDir: dir, outDir: out });
    await expect(p).rejects.toThrow(MistralOnnxError);
    await expect(buildOnnxModel({ modelDir: dir, outDir: out })).rejects.toThrow(
      /missing weight "model\.layers\.1\.mlp\.up_proj\.weight"/,
    );
    expect(await readdir(out)).toEqual([]);
  });

  it("a wrong shape is named with both shapes", async () => {
    const dir = await editedModel((ts) => {
      const t = ts.find((x) => x.name === "model.layers.0.self_attn.k_proj.weight");
      if (t) t.shape = [16, 128]; // same byte count, wrong shape
    });
    await expect(buildOnnxModel({ modelDir: dir, outDir: await outDir() })).rejects.toThrow(
      /"model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[16, 128\], expected \[32, 64\]/,
    );
  });

  it("a delta of the wrong size is named by module", async () => {
    const deltas = {
      get: async (m: string) =>
        m === "model.layers.0.mlp.down_proj"
          ? {
              kind: "lowrank" as const,
              A: new Float32Array(4 * 64),
              B: new Float32Array(64 * 4),
              rank: 4,
            }
          : undefined,
    };
    await expect(
      buildOnnxModel({ modelDir: MISTRAL, outDir: await outDir(), deltas }),
    ).rejects.toThrow(
      /model\.layers\.0\.mlp\.down_proj: A has 256 values, expected rank×in = 4×128/,
    );
  });

  it("closes the checkpoint when the output folder cannot be created", async () => {
    const t = await tempDir("notdir");
    cleanups.push(t.cleanup);
    const blocker = join(t.dir, "file");
    await writeFile(blocker, "not a folder");
    const close = vi.spyOn(SafetensorsCheckpoint.prototype, "close");
    try {
      await expect(
        buildOnnxModel({ modelDir: MISTRAL, outDir: join(blocker, "out") }),
      ).rejects.toThrow();
      expect(close).toHaveBeenCalledTimes(1);
    } finally {
      close.mockRestore();
    }
  });

  it("a build that fails after writing weights leaves no temp or final file", async () => {
    const out = await outDir();
    const deltas = {
      // Fails on the last layer's last projection, after most weights went to the data file.
      get: async (m: string) => {
        if (m === "model.layers.1.mlp.down_proj") throw new Error("delta source failed");
        return undefined;
      },
    };
    await expect(buildOnnxModel({ modelDir: MISTRAL, outDir: out, deltas })).rejects.toThrow(
      "delta source failed",
    );
    expect(await readdir(out)).toEqual([]);
    // And a good build leaves exactly the three files.
    await buildOnnxModel({ modelDir: MISTRAL, outDir: out });
    expect((await readdir(out)).sort()).toEqual(
      [ONNX_FILE, ONNX_DATA_FILE, GENERATION_ONNX_FILE].sort(),
    );
  });

  it("an unsupported config stops the build before any file is written", async () => {
    const t = await tempDir("cfg");
    cleanups.push(t.cleanup);
    await writeFile(
      join(t.dir, "config.json"),
      JSON.stringify({ ...baseConfig(), architectures: ["FalconForCausalLM"] }),
    );
    await expect(buildOnnxModel({ modelDir: t.dir, outDir: join(t.dir, "out") })).rejects.toThrow(
      /FalconForCausalLM/,
    );
  });
});

describe("runner input errors and providers", () => {
  it("rejects token ids outside the vocabulary; CUDA falls back to CPU with a warning when absent", async () => {
    const out = await outDir();
    const { onnxPath } = await buildOnnxModel({ modelDir: MISTRAL, outDir: out });
    const warnings: string[] = [];
    const runner = await MistralRunner.create({
      onnxPath,
      modelDir: MISTRAL,
      executionProvider: "cuda",
      threads: 1,
      onWarning: (m) => warnings.push(m),
    });
    try {
      if (runner.executionProvider === "cpu") {
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(
          /CUDA execution provider unavailable \(.+\); falling back to CPU/,
        );
        // The cause is named: the provider library that is absent, or the loader's message.
        expect(warnings[0]).toMatch(
          /libonnxruntime_providers_(shared|cuda)\.so( and \S+)? not found in |\.so[.\d]*: cannot open shared object file|Failed to load shared library/,
        );
        if (process.platform === "linux" && !cudaInstalled())
          expect(warnings[0]).toMatch(
            /libonnxruntime_providers_shared\.so and libonnxruntime_providers_cuda\.so not found in \//,
          );
      }
      await expect(runner.logits([[1, 5, 99999]])).rejects.toThrow(/token id 99999 in row 0/);
      const s = await runner.scoreContinuations("Hello", ["", " world"]);
      expect(s[0]).toEqual({
        sum: Number.NEGATIVE_INFINITY,
        mean: Number.NEGATIVE_INFINITY,
        tokens: 0,
      });
      expect(s[1]?.tokens).toBeGreaterThan(0);
    } finally {
      await runner.close();
    }
  });

  it("webgpu falls back to CPU with a warning naming onnxruntime's error (and a missing Vulkan loader); the runner works", async () => {
    const out = await outDir();
    const { onnxPath } = await buildOnnxModel({ modelDir: MISTRAL, outDir: out });
    const warnings: string[] = [];
    const runner = await MistralRunner.create({
      onnxPath,
      modelDir: MISTRAL,
      executionProvider: "webgpu",
      threads: 1,
      onWarning: (m) => warnings.push(m),
    });
    try {
      if (runner.executionProvider === "cpu") {
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(
          /WebGPU execution provider unavailable \(.+\); falling back to CPU/,
        );
        // onnxruntime's own message, without its source-file prefix.
        expect(warnings[0]).not.toMatch(/onnxruntime_src|was false/);
        expect(warnings[0]).toMatch(/WebGPU|adapter|libvulkan|backend/i);
        if (process.platform === "linux" && !existsSync("/usr/lib/x86_64-linux-gnu/libvulkan.so.1"))
          expect(warnings[0]).toMatch(/libvulkan\.so\.1: cannot open shared object file/);
      } else {
        expect(runner.executionProvider).toBe("webgpu");
      }
      const s = await runner.scoreContinuations("Hello", [" world"]);
      expect(s[0]?.tokens).toBeGreaterThan(0);
      expect(Number.isFinite(s[0]?.sum)).toBe(true);
    } finally {
      await runner.close();
    }
  });

  it("cudaLibraryProblem names missing provider libraries, or the dependency the loader cannot find", async () => {
    const empty = await outDir();
    expect(cudaLibraryProblem(empty)).toBe(
      `libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so not found in ${empty}: for CUDA 12 onnxruntime-node's install script downloads them, for CUDA 13 \`mistral-onnx-enable-cuda <onnxruntime-gpu wheel>\` installs them (see "Execution providers" in @merge/mistral-onnx's README)`,
    );
    if (process.platform !== "linux" || !hasGcc()) return;
    // Stand-ins: a loadable shared provider, and a CUDA provider linked against a library that
    // is then removed (as a missing libcublasLt would be).
    const dir = await outDir();
    const c = join(dir, "x.c");
    await writeFile(c, "int f(void) { return 1; }\n");
    const gcc = (args: string[]) => execFileSync("gcc", args, { cwd: dir, stdio: "ignore" });
    gcc(["-shared", "-fPIC", "-o", "libonnxruntime_providers_shared.so", c]);
    gcc(["-shared", "-fPIC", "-o", "libcublasLt_standin.so.12", c]);
    gcc([
      "-shared",
      "-fPIC",
      "-o",
      "libonnxruntime_providers_cuda.so",
      c,
      "-Wl,--no-as-needed",
      join(dir, "libcublasLt_standin.so.12"),
    ]);
    await rm(join(dir, "libcublasLt_standin.so.12"));
    expect(cudaLibraryProblem(dir)).toMatch(
      /libcublasLt_standin\.so\.12: cannot open shared object file/,
    );
  });

  it("cudaLibraryProblem does not count a symbol the CUDA provider takes from the shared provider as a problem", async () => {
    if (process.platform !== "linux" || !hasGcc()) return;
    // The real CUDA provider resolves Provider_GetHost from the shared provider library, which
    // onnxruntime loads first; opened alone it fails with "undefined symbol: Provider_GetHost"
    // (seen on the H200 with libraries that work). A data reference fails at load, as there.
    const dir = await outDir();
    await writeFile(join(dir, "shared.c"), "int Provider_GetHost = 7;\n");
    await writeFile(
      join(dir, "cuda.c"),
      "extern int Provider_GetHost;\nint *host = &Provider_GetHost;\n",
    );
    const gcc = (args: string[]) => execFileSync("gcc", args, { cwd: dir, stdio: "ignore" });
    gcc(["-shared", "-fPIC", "-o", "libonnxruntime_providers_shared.so", "shared.c"]);
    gcc(["-shared", "-fPIC", "-o", "libonnxruntime_providers_cuda.so", "cuda.c"]);
    expect(cudaLibraryProblem(dir)).toBeUndefined();
  });

  it("an unloadable model is a MistralOnnxError naming the file, with or without the CUDA fallback", async () => {
    const out = await outDir();
    const onnxPath = join(out, ONNX_FILE);
    await writeFile(onnxPath, "not an onnx model");
    for (const executionProvider of EXECUTION_PROVIDERS) {
      const error = await MistralRunner.create({
        onnxPath,
        modelDir: MISTRAL,
        executionProvider,
        threads: 1,
        onWarning: () => {},
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, executionProvider).toBeInstanceOf(MistralOnnxError);
      expect((error as MistralOnnxError).file).toBe(onnxPath);
      expect((error as Error).message).toContain(onnxPath);
    }
  });
});

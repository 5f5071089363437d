import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsCheckpoint, writePeftAdapter } from "@merge/tensor-io";

export const APP_DIR = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
export const REPO = resolve(APP_DIR, "../..");
/** The tiny random Mistral (config, weights, tokenizer) committed by @merge/mistral-onnx. */
export const TINY_BASE = join(REPO, "packages/mistral-onnx/test/fixtures/mistral");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI as `pnpm --filter submit start` does: in apps/submit, with the source condition;
 * `stdin` (default: none) is written to its standard input, which is then closed.
 */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  stdin = "",
): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "./src/cli.ts", ...args],
      { cwd: APP_DIR, env: { ...process.env, HF_HUB_OFFLINE: "1", ...env }, stdio: "pipe" },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Deterministic uniform values in [-scale, scale) (mulberry32). */
export function seededValues(seed: number, n: number, scale: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/**
 * Writes a PEFT adapter for the tiny base: rank-`rank` random factors for the given modules,
 * with shapes from the base checkpoint (or `override` shapes, to make a mismatching expert).
 */
export async function writeTinyAdapter(
  dir: string,
  seed: number,
  modules: string[],
  options: { rank?: number; override?: { inFeatures: number; outFeatures: number } } = {},
): Promise<void> {
  const rank = options.rank ?? 2;
  const base = await SafetensorsCheckpoint.open(TINY_BASE);
  try {
    const mods = modules.map((module, k) => {
      const [outF, inF] = base.has(`${module}.weight`)
        ? (base.info(`${module}.weight`).shape as [number, number])
        : [64, 64];
      const outFeatures = options.override?.outFeatures ?? outF;
      const inFeatures = options.override?.inFeatures ?? inF;
      return {
        module,
        A: seededValues(seed * 1000 + k * 2, rank * inFeatures, 0.3),
        aShape: [rank, inFeatures] as [number, number],
        B: seededValues(seed * 1000 + k * 2 + 1, outFeatures * rank, 0.3),
        bShape: [outFeatures, rank] as [number, number],
      };
    });
    await writePeftAdapter(dir, {
      config: {
        r: rank,
        loraAlpha: 2 * rank,
        targetModules: [...new Set(modules.map((m) => m.split(".").at(-1)!))],
      },
      modules: mods,
    });
  } finally {
    await base.close();
  }
}

export const TINY_CSV = `id,input,eval_type,answer_choices
q0,"Question: which is a colour?
Answer:",multiple_choice,"['red', 'table', ""it's blue""]"
g0,"Write a word, then stop:",generation,
q1,"2 + 2 =",multiple_choice,"['4', '5']"
g1,"Once upon a ""time""",generation,None
g2,Hello,generation,
`;

/** A workspace-like folder: two adapters, a data CSV and a config naming them. */
export async function makeTinySetup(
  dir: string,
  extraConfig = "",
): Promise<{ config: string; out: string }> {
  await mkdir(join(dir, "experts"), { recursive: true });
  await writeTinyAdapter(join(dir, "experts", "a"), 1, [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.1.mlp.down_proj",
  ]);
  await writeTinyAdapter(join(dir, "experts", "b"), 2, [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.o_proj",
  ]);
  await writeFile(join(dir, "data.csv"), TINY_CSV);
  const config = join(dir, "config.yaml");
  await writeFile(
    config,
    `base: ${TINY_BASE}
experts:
  - ${join(dir, "experts")}/*
data: ${join(dir, "data.csv")}
out: ${join(dir, "out", "test.csv")}
strategy:
  method: osm
runtime:
  cacheDir: ${join(dir, "out", "cache")}
  dtype: fp32
  executionProvider: cpu
  threads: 1
  maxNewTokens: 8
  generationBatchSize: 2
seed: 3
${extraConfig}`,
  );
  return { config, out: join(dir, "out", "test.csv") };
}

// `pnpm --filter @merge/mistral-onnx bench:score-memory`: peak RSS of scoring one multiple-choice
// row with a long prompt, per-choice forwards on the shared batch-1 prompt cache (the runner's
// method) vs the pre-issue-10 method (prompt cache tiled once per choice, one batch). Each
// method runs in a fresh process on the random "kvheavy" model (small weights, large cache).
// Env: BENCH_PROMPT_TOKENS (default 1024), BENCH_CHOICES (default 4), BENCH_THREADS.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildOnnxModel, MistralRunner } from "../src/index.js";
import { tiledCacheScores } from "../test/helpers.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const PYTHON = process.env.PYTHON ?? join(ROOT, ".venv", "bin", "python");
const PROMPT_TOKENS = Number(process.env.BENCH_PROMPT_TOKENS ?? 1024);
const CHOICES = Number(process.env.BENCH_CHOICES ?? 4);
const THREADS = process.env.BENCH_THREADS ? Number(process.env.BENCH_THREADS) : undefined;
const MB = 2 ** 20;

async function child(mode: string, modelDir: string, onnxPath: string): Promise<void> {
  const runner = await MistralRunner.create({
    onnxPath,
    modelDir,
    ...(THREADS ? { threads: THREADS } : {}),
  });
  const words = "the quick brown fox jumps over a lazy dog and then ".repeat(PROMPT_TOKENS);
  let prompt = words;
  // Trim the prompt to about PROMPT_TOKENS tokens.
  const ids = runner.tokenizer.encode(prompt);
  prompt = runner.tokenizer.decode(ids.slice(1, PROMPT_TOKENS), { skipSpecialTokens: true });
  const choices = Array.from({ length: CHOICES }, (_, i) => ` answer number ${i + 1} here`);
  const score = (p: string) =>
    mode === "tiled" ? tiledCacheScores(runner, p, choices) : runner.scoreContinuations(p, choices);
  await score("warm up"); // session arenas and kernels, outside the measurement
  const before = process.resourceUsage().maxRSS * 1024;
  const rssBefore = process.memoryUsage().rss;
  const t = performance.now();
  const s = await score(prompt);
  const secs = (performance.now() - t) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  const c = runner.config;
  const cacheBytes =
    c.numLayers * 2 * c.numKvHeads * c.headDim * 4 * runner.tokenizer.encode(prompt).length;
  console.log(
    JSON.stringify({
      mode,
      promptTokens: runner.tokenizer.encode(prompt).length,
      choices: CHOICES,
      promptCacheMiB: cacheBytes / MB,
      peakRssMiB: peak / MB,
      peakOverBaselineMiB: (peak - Math.max(before, rssBefore)) / MB,
      seconds: secs,
      sums: s.map((x) => x.sum),
    }),
  );
  await runner.close();
}

async function main(): Promise<void> {
  const dir = join(tmpdir(), "mistral-onnx-bench-kvheavy");
  if (!existsSync(join(dir, "model.safetensors"))) {
    execFileSync(
      PYTHON,
      [
        join(ROOT, "tools", "fixtures", "mistral-onnx", "make_bench_model.py"),
        dir,
        "--size",
        "kvheavy",
      ],
      { stdio: "inherit" },
    );
  }
  const onnxDir = join(dir, "onnx");
  const onnxPath = join(onnxDir, "model.onnx");
  if (!existsSync(onnxPath)) await buildOnnxModel({ modelDir: dir, outDir: onnxDir });
  for (const mode of ["tiled", "per-choice"]) {
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), "--child", mode, dir, onnxPath],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    process.stdout.write(out);
  }
}

if (process.argv[2] === "--child") {
  await child(process.argv[3] as string, process.argv[4] as string, process.argv[5] as string);
} else {
  await main();
}

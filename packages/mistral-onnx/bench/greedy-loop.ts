// `pnpm --filter @merge/mistral-onnx bench:greedy-loop`: greedy decode with the loop on the host
// (generationGraph "none": one session.run per token, the KV cache passed in and out each step)
// against the loop inside generate.onnx ("loop": one session.run per batch), on the CPU EP with a
// small random Mistral-shaped model (tools/fixtures/mistral-onnx/make_bench_model.py). On the CPU
// the host loop's per-step cost is copying the cache into and out of onnxruntime; under CUDA the
// same bytes cross PCIe, which is what issue 10's ≤ 60 s needs removed; this bench measures the
// CPU side only. Both modes must return the same tokens (checked here too, not a test).
// Env: BENCH_THREADS (default: all cores), BENCH_LAYERS (8), BENCH_HIDDEN (512), BENCH_VOCAB (4096),
// BENCH_BATCH (8), BENCH_PROMPT (48 tokens), BENCH_NEW (64), BENCH_REPS (3), BENCH_DTYPE (fp32),
// BENCH_PYTHON.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildOnnxModel, type ModelDtype, MistralRunner } from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const PYTHON = process.env.BENCH_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const env = (k: string, d: number) => Number(process.env[k] ?? d);
const THREADS = env("BENCH_THREADS", availableParallelism());
const LAYERS = env("BENCH_LAYERS", 8);
const HIDDEN = env("BENCH_HIDDEN", 512);
const VOCAB = env("BENCH_VOCAB", 4096);
const BATCH = env("BENCH_BATCH", 8);
const PROMPT = env("BENCH_PROMPT", 48);
const NEW = env("BENCH_NEW", 64);
const REPS = env("BENCH_REPS", 3);
const DTYPE = (process.env.BENCH_DTYPE ?? "fp32") as ModelDtype;
const HEADS = HIDDEN / 64;
const KV_HEADS = Math.max(1, HEADS / 4);

const modelDir = join(tmpdir(), `mistral-onnx-greedy-loop-L${LAYERS}-H${HIDDEN}-V${VOCAB}`);
if (!existsSync(join(modelDir, "model.safetensors"))) {
  console.error(`generating a random ${LAYERS}-layer model in ${modelDir} ...`);
  execFileSync(
    PYTHON,
    [
      join(ROOT, "tools", "fixtures", "mistral-onnx", "make_bench_model.py"),
      modelDir,
      ...["--size", "1b", "--layers", String(LAYERS), "--hidden", String(HIDDEN)],
      ...["--intermediate", String(HIDDEN * 3), "--heads", String(HEADS)],
      ...["--kv-heads", String(KV_HEADS), "--vocab", String(VOCAB)],
    ],
    { stdio: "inherit" },
  );
}
const outDir = join(modelDir, `onnx-${DTYPE}`);
const { onnxPath } = await buildOnnxModel({ modelDir, outDir, dtype: DTYPE });
const open = (generationGraph: "none" | "loop") =>
  MistralRunner.create({ onnxPath, modelDir, threads: THREADS, generationGraph });
const host = await open("none");
const loop = await open("loop");

// Prompts of PROMPT − 8 … PROMPT tokens of random ids, so the batch is left-padded.
let seed = 7;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const prompts = Array.from({ length: BATCH }, (_, b) => [
  1,
  ...Array.from({ length: PROMPT - 1 - (b % 9) }, () => 3 + Math.floor(rnd() * (VOCAB - 3))),
]);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const times: Record<string, number[]> = { none: [], loop: [] };
let tokens = 0;
await loop.generateIds(prompts, { maxNewTokens: 2 }); // opens the generation session
for (let r = 0; r < REPS; r++) {
  for (const [name, runner] of [
    ["none", host],
    ["loop", loop],
  ] as const) {
    const t0 = performance.now();
    const ids = await runner.generateIds(prompts, { maxNewTokens: NEW });
    times[name]?.push(performance.now() - t0);
    tokens = ids.reduce((s, x) => s + x.length, 0);
  }
}
const a = await host.generateIds(prompts, { maxNewTokens: NEW });
const b = await loop.generateIds(prompts, { maxNewTokens: NEW });
const same = JSON.stringify(a) === JSON.stringify(b);
const kvPerToken = LAYERS * 2 * KV_HEADS * 64 * (DTYPE === "fp32" ? 4 : 2);
console.log(
  `# ${new Date().toISOString()} ${cpus()[0]?.model} ×${availableParallelism()} threads=${THREADS} load=${loadavg()[0]?.toFixed(2)}`,
);
console.log(
  `# model L=${LAYERS} H=${HIDDEN} heads=${HEADS}/${KV_HEADS} V=${VOCAB} ${DTYPE}; batch ${BATCH}, prompt ≤ ${PROMPT}, ${NEW} new tokens, ${tokens} generated; KV ${kvPerToken} B/token/row; same tokens: ${same}`,
);
console.log("| decode loop | median ms | runs ms | tokens/s |");
console.log("| --- | ---: | --- | ---: |");
for (const [name, label] of [
  ["none", 'host ("none")'],
  ["loop", 'in-graph ("loop")'],
] as const) {
  const t = times[name] as number[];
  console.log(
    `| ${label} | ${median(t).toFixed(0)} | ${t.map((x) => x.toFixed(0)).join(", ")} | ${((tokens / median(t)) * 1000).toFixed(1)} |`,
  );
}
await host.close();
await loop.close();
if (!same) process.exitCode = 1;

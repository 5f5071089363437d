// `pnpm --filter @merge/mistral-onnx bench:build`: ONNX build time of a 7B-shaped stand-in
// (full Mistral-7B widths and vocabulary, BENCH_BUILD_LAYERS decoder layers, random bf16
// weights from tools/standin-7b/make_standin.py) with buildThreads = 1 (the single-thread path,
// the named peer) and = BENCH_THREADS, for each BENCH_BUILD_CONFIGS dtype/quant. Every build
// runs in its own process (bench/build-cli.ts); the table checks that both write the same bytes
// and projects the 32-layer build from the per-layer time.
// Env: BENCH_BUILD_MODEL (a model dir; default: generate the stand-in in the temp dir),
// BENCH_BUILD_LAYERS (default 2), BENCH_BUILD_CONFIGS (default "fp16/none,fp32/int4"),
// BENCH_THREADS (default: all cores), BENCH_PYTHON.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const PYTHON = process.env.BENCH_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const LAYERS = Number(process.env.BENCH_BUILD_LAYERS ?? 2);
const CONFIGS = (process.env.BENCH_BUILD_CONFIGS ?? "fp16/none,fp32/int4").split(",");
const FULL_LAYERS = 32;

interface BuildRun {
  buildS: number;
  cpuS: number;
  dataBytes: number;
  peakRssMb: number | null;
  layerS: number;
  otherS: number;
}

function standinDir(): string {
  if (process.env.BENCH_BUILD_MODEL) return process.env.BENCH_BUILD_MODEL;
  const dir = join(tmpdir(), `mistral-onnx-standin-7b-${LAYERS}l`);
  if (!existsSync(join(dir, "base", "config.json"))) {
    console.error(`generating the 7B stand-in (${LAYERS} layers) in ${dir} ...`);
    execFileSync(
      PYTHON,
      [
        join(ROOT, "tools", "standin-7b", "make_standin.py"),
        "--out",
        dir,
        "--layers",
        String(LAYERS),
        "--no-tokenizer",
        "--no-experts",
      ],
      { stdio: "inherit" },
    );
  }
  return join(dir, "base");
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

function build(modelDir: string, outDir: string, dtype: string, quant: string, threads: number) {
  const out = execFileSync(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      join(HERE, "build-cli.ts"),
      modelDir,
      outDir,
      quant,
      dtype,
      String(threads),
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  return JSON.parse(out.trim().split("\n").at(-1) as string) as BuildRun;
}

const modelDir = standinDir();
const layers = (
  JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as {
    num_hidden_layers: number;
  }
).num_hidden_layers;
console.log(`# @merge/mistral-onnx build benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; model ${modelDir} (${layers} layers); load average at start ${loadavg()[0]?.toFixed(1)}`,
);
console.log(
  "\n| dtype/quant | buildThreads | build s | CPU s | peak RSS MB | data GB | layer s | rest s | 32-layer build s (projected) | same bytes as 1 thread |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const config of CONFIGS) {
  const [dtype, quant] = config.split("/") as [string, string];
  let refHash: string[] | undefined;
  for (const threads of [...new Set([1, THREADS])]) {
    const outDir = join(tmpdir(), `mistral-onnx-build-bench-${dtype}-${quant}-${threads}`);
    await rm(outDir, { recursive: true, force: true });
    const r = build(modelDir, outDir, dtype, quant, threads);
    const hash = [
      await sha256(join(outDir, "model.onnx")),
      await sha256(join(outDir, "model.onnx.data")),
    ];
    await rm(outDir, { recursive: true, force: true });
    refHash ??= hash;
    const same = hash[0] === refHash[0] && hash[1] === refHash[1];
    // Layers cost the same each; the rest (embedding, lm_head, graph encoding) is paid once.
    const projected = r.otherS + (r.layerS / layers) * FULL_LAYERS;
    const peer = threads === 1 ? "1 (single-thread path, peer)" : String(threads);
    console.log(
      `| ${config} | ${peer} | ${r.buildS.toFixed(1)} | ${r.cpuS.toFixed(1)} | ${r.peakRssMb?.toFixed(0) ?? "?"} | ${(r.dataBytes / 1e9).toFixed(2)} | ${r.layerS.toFixed(1)} | ${r.otherS.toFixed(1)} | ${projected.toFixed(0)} | ${threads === 1 ? "–" : same ? "yes" : "**NO**"} |`,
    );
  }
}

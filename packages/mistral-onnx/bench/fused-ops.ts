// `pnpm --filter @merge/mistral-onnx bench:fused`: prefill and decode tokens/s of the standard
// graph (fusedOps "none") next to the contrib-op graph (fusedOps "contrib"), on the CPU provider,
// for the tiny fixture model and a small random Mistral-shaped model (4 layers of the 1B shape:
// hidden 2048, 16 query / 4 KV heads of 128, vocabulary 4096) generated in a temp dir.
// Each measurement runs in its own process (bench/ort-worker.ts). Prints a markdown table.
// Env: BENCH_THREADS (default 2), BENCH_SIZES (default "tiny,small"), BENCH_DTYPES
// (default "fp32,fp16"), BENCH_PYTHON (for generating the small model).
import { execFileSync } from "node:child_process";
import { rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { smallBenchModel } from "./small-model.js";
import { buildOnnxModel, FUSED_OPS, type ModelDtype } from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const SIZES = (process.env.BENCH_SIZES ?? "tiny,small").split(",");
const DTYPES = (process.env.BENCH_DTYPES ?? "fp32,fp16").split(",") as ModelDtype[];

interface WorkerRun {
  loadS: number;
  peakRssMb: number;
  results: Array<{ batch: number; prefillTokS: number; decodeTokS: number }>;
}

function modelDirFor(size: string): string {
  if (size === "tiny") return join(HERE, "..", "test", "fixtures", "mistral");
  if (size !== "small") throw new Error(`BENCH_SIZES: unknown size ${JSON.stringify(size)}`);
  return smallBenchModel("mistral-onnx-bench-fused-small");
}

const fmt = (x: number | undefined) =>
  x === undefined ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(2);

console.log(`# fusedOps benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; threads ${THREADS}; load average at start ${loadavg()[0]?.toFixed(1)}`,
);
console.log("\n| model | dtype | fusedOps | batch | prefill tok/s | decode tok/s | peak RSS MB |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const size of SIZES) {
  const modelDir = modelDirFor(size);
  const promptLen = 128;
  const decodeSteps = size === "tiny" ? 64 : 16;
  const reps = size === "tiny" ? 5 : 2;
  for (const dtype of DTYPES) {
    const base = new Map<number, { prefill: number; decode: number }>();
    for (const fusedOps of FUSED_OPS) {
      const outDir = join(tmpdir(), `mistral-onnx-bench-fused-${size}-${dtype}-${fusedOps}`);
      const { onnxPath } = await buildOnnxModel({ modelDir, outDir, dtype, fusedOps });
      const args = JSON.stringify({
        onnxPath,
        modelDir,
        threads: THREADS,
        promptLen,
        decodeSteps,
        batches: [1, 4],
        reps,
      });
      const out = execFileSync(
        process.execPath,
        ["--import", "tsx", "--conditions=source", join(HERE, "ort-worker.ts"), args],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
      );
      const run = JSON.parse(out.trim().split("\n").at(-1) as string) as WorkerRun;
      await rm(outDir, { recursive: true, force: true });
      for (const r of run.results) {
        const b = base.get(r.batch);
        if (!b) base.set(r.batch, { prefill: r.prefillTokS, decode: r.decodeTokS });
        const rel = (x: number, y: number | undefined) =>
          y === undefined || fusedOps === "none" ? "" : ` (${(x / y).toFixed(2)}×)`;
        console.log(
          `| ${size} | ${dtype} | ${fusedOps} | ${r.batch} | ${fmt(r.prefillTokS)}${rel(r.prefillTokS, b?.prefill)} | ${fmt(r.decodeTokS)}${rel(r.decodeTokS, b?.decode)} | ${run.peakRssMb.toFixed(0)} |`,
        );
      }
    }
  }
}

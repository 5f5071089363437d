// `pnpm --filter @merge/mistral-onnx bench`: prefill/decode tokens/s and peak RSS of the ONNX
// runner next to transformers (PyTorch eager, fp32, same threads, same weights), for the tiny
// fixture model and a ~1B-parameter random Mistral-shaped model generated in a temp dir.
// Env: BENCH_THREADS (default: all cores), BENCH_SIZES (default "tiny,1b"), BENCH_PYTHON.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildOnnxModel } from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const PYTHON = process.env.BENCH_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const SIZES = (process.env.BENCH_SIZES ?? "tiny,1b").split(",");

interface Run {
  torch?: string;
  loadS: number;
  peakRssMb: number;
  results: Array<{ batch: number; prefillTokS: number; decodeTokS: number }>;
}

/** Single-thread copy bandwidth (bytes read + written per second) over a buffer far larger than cache. */
function copyBandwidth(): number {
  const n = 64 * 1024 * 1024; // 256 MB of float32
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    b.set(a);
    const s = (performance.now() - t) / 1000;
    best = Math.max(best, (2 * n * 4) / s);
  }
  return best;
}

function modelDirFor(size: string): string {
  if (size === "tiny") return join(HERE, "..", "test", "fixtures", "mistral");
  const dir = join(tmpdir(), `mistral-onnx-bench-${size}`);
  if (!existsSync(join(dir, "model.safetensors"))) {
    console.error(`generating random ${size} model in ${dir} ...`);
    execFileSync(
      PYTHON,
      [join(ROOT, "tools", "fixtures", "mistral-onnx", "make_bench_model.py"), dir, "--size", size],
      {
        stdio: "inherit",
      },
    );
  }
  return dir;
}

const hasPython = existsSync(PYTHON);
if (!hasPython) console.error(`no Python at ${PYTHON}: the PyTorch column is skipped`);
const bw = copyBandwidth();
console.log(`# @merge/mistral-onnx benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; threads ${THREADS}; copy bandwidth ${(bw / 1e9).toFixed(1)} GB/s (1 thread); load average at start ${loadavg()[0]?.toFixed(1)}`,
);

const QUANTS = (process.env.BENCH_QUANT ?? "none,int8,int4").split(",") as Array<
  "none" | "int8" | "int4"
>;
const fmt = (x: number | undefined) =>
  x === undefined ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(2);

function lastJsonLine(out: string): Run {
  return JSON.parse(out.trim().split("\n").at(-1) as string) as Run;
}

for (const size of SIZES) {
  const modelDir = modelDirFor(size);
  const promptLen = size === "tiny" ? 128 : 64;
  const decodeSteps = size === "tiny" ? 64 : 16;
  const reps = size === "tiny" ? 5 : 1;
  let torch: Run | undefined;
  if (hasPython) {
    torch = lastJsonLine(
      execFileSync(
        PYTHON,
        [
          join(ROOT, "tools", "fixtures", "mistral-onnx", "bench_torch.py"),
          modelDir,
          ...["--threads", String(THREADS), "--prompt-len", String(promptLen)],
          ...["--decode-steps", String(decodeSteps), "--batches", "1,8", "--reps", String(reps)],
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
      ),
    );
  }
  const rows: string[] = [];
  const notes: string[] = [];
  for (const quant of QUANTS) {
    const outDir = join(tmpdir(), `mistral-onnx-bench-${size}-${quant}`);
    const t = performance.now();
    const { onnxPath } = await buildOnnxModel({ modelDir, outDir, weightQuant: quant });
    const buildS = (performance.now() - t) / 1000;
    const dataBytes = statSync(`${onnxPath}.data`).size;
    const cfg = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as {
      vocab_size: number;
      hidden_size: number;
    };
    // Bytes read per decoded token: every weight but the embedding table (Gather reads one row).
    const perToken = dataBytes - cfg.vocab_size * cfg.hidden_size * 4;
    const workerArgs = JSON.stringify({
      onnxPath,
      modelDir,
      threads: THREADS,
      promptLen,
      decodeSteps,
      batches: [1, 8],
      reps,
    });
    const ort = lastJsonLine(
      execFileSync(
        process.execPath,
        ["--import", "tsx", "--conditions=source", join(HERE, "ort-worker.ts"), workerArgs],
        {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
        },
      ),
    );
    await rm(outDir, { recursive: true, force: true });
    const label =
      quant === "none" ? "ORT fp32" : `ORT ${quant} (MatMulNBits, block 128, acc. level 4)`;
    for (const r of ort.results) {
      const p = torch?.results.find((x) => x.batch === r.batch);
      rows.push(
        `| ${label} | ${r.batch} | ${fmt(r.prefillTokS)} | ${p ? (r.prefillTokS / p.prefillTokS).toFixed(2) : "–"}× | ${fmt(r.decodeTokS)} | ${p ? (r.decodeTokS / p.decodeTokS).toFixed(2) : "–"}× |`,
      );
    }
    const b1 = ort.results.find((r) => r.batch === 1);
    const bound = bw / perToken;
    notes.push(
      `${label}: data ${(dataBytes / 2 ** 20).toFixed(0)} MiB, build ${buildS.toFixed(1)} s, load ${ort.loadS.toFixed(1)} s, peak RSS ${ort.peakRssMb.toFixed(0)} MB; batch-1 decode ${fmt(b1?.decodeTokS)} tok/s = ${b1 ? ((100 * b1.decodeTokS) / bound).toFixed(0) : "?"}% of the bandwidth bound ${fmt(bound)} tok/s (${(perToken / 2 ** 20).toFixed(0)} MiB/token)`,
    );
  }
  console.log(
    `\n## ${size} (prompt ${promptLen} tokens, ${decodeSteps} greedy decode steps, threads ${THREADS})`,
  );
  console.log("| runtime | batch | prefill tok/s | vs torch | decode tok/s | vs torch |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const r of torch?.results ?? []) {
    console.log(
      `| torch ${torch?.torch ?? ""} eager fp32 | ${r.batch} | ${fmt(r.prefillTokS)} | 1.00× | ${fmt(r.decodeTokS)} | 1.00× |`,
    );
  }
  for (const r of rows) console.log(r);
  if (torch)
    notes.unshift(
      `torch: load ${torch.loadS.toFixed(1)} s, peak RSS ${torch.peakRssMb.toFixed(0)} MB`,
    );
  for (const n of notes) console.log(`- ${n}`);
  console.log(
    `- load average after: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );
}

// Benchmark: read every tensor of a ~1 GB safetensors file tensor by tensor, against a plain
// sequential read of the same file in the same run. Targets (issue 2): throughput ratio ≥ 0.8,
// peak RSS ≤ largest tensor + 64 MB. Run: pnpm --filter @merge/tensor-io bench
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type TensorToWrite, writeSafetensors } from "../src/index.js";

const MB = 1 << 20;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

/** A Mistral-7B-shaped slice in BF16: the embedding plus two decoder layers' projections. */
function mistralLikeTensors(): TensorToWrite[] {
  const hidden = 4096;
  const kv = 1024;
  const ffn = 14336;
  const shapes: Array<[string, number[]]> = [["model.embed_tokens.weight", [32000, hidden]]];
  for (let layer = 0; layer < 2; layer++) {
    const p = `model.layers.${layer}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [hidden]],
      [`${p}.self_attn.q_proj.weight`, [hidden, hidden]],
      [`${p}.self_attn.k_proj.weight`, [kv, hidden]],
      [`${p}.self_attn.v_proj.weight`, [kv, hidden]],
      [`${p}.self_attn.o_proj.weight`, [hidden, hidden]],
      [`${p}.post_attention_layernorm.weight`, [hidden]],
      [`${p}.mlp.gate_proj.weight`, [ffn, hidden]],
      [`${p}.mlp.up_proj.weight`, [ffn, hidden]],
      [`${p}.mlp.down_proj.weight`, [hidden, ffn]],
    );
  }
  return shapes.map(([name, shape], i) => ({
    name,
    dtype: "BF16",
    shape,
    // Content is irrelevant to I/O speed; a cheap fill keeps generation fast.
    data: () => new Uint8Array(shape.reduce((a, b) => a * b, 1) * 2).fill(0x3f - (i % 7)),
  }));
}

interface Phase {
  mode: string;
  bytes: number;
  seconds: number;
  maxRssBytes: number;
}

function runPhase(mode: string, file: string): Phase {
  const worker = fileURLToPath(new URL("./read-worker.ts", import.meta.url));
  const out = execFileSync(process.execPath, [...process.execArgv, worker, mode, file], {
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").at(-1)!) as Phase;
}

const ROWS: Array<[string, string]> = [
  ["plain sequential read, reused 16 MB buffer (baseline)", "plain"],
  ["plain positioned reads, fresh buffer per tensor", "plain-fresh"],
  ["SafetensorsFile.readBytes (fresh buffer per tensor)", "tensors"],
  ["SafetensorsFile.readInto (one reused buffer)", "tensors-into"],
  ["SafetensorsFile.readF32 (BF16->F32, fresh arrays)", "tensors-f32"],
];
const MODES = ROWS.map(([, mode]) => mode);

/** Drops the file from the page cache (GNU dd's iflag=nocache; no root needed). */
function evictFromPageCache(file: string): boolean {
  try {
    execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"], {
      stdio: "ignore",
    });
    return true;
  } catch {
    return false;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = await mkdtemp(join(tmpdir(), "tensor-io-bench-"));
try {
  const file = join(dir, "bench.safetensors");
  const tensors = mistralLikeTensors();
  const sizes = tensors.map((t) => t.shape.reduce((a, b) => a * b, 1) * 2);
  const largest = Math.max(...sizes);
  const dataBytes = sizes.reduce((a, b) => a + b, 0);
  process.stdout.write(`writing ${file} ... `);
  const t0 = performance.now();
  await writeSafetensors(file, tensors);
  const size = (await stat(file)).size;
  console.log(`${(size / MB).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const idle = runPhase("idle", file);
  const budget = largest + 64 * MB;
  console.log(
    `\nfile ${(size / MB).toFixed(0)} MB, ${tensors.length} BF16 tensors, largest ${(largest / MB).toFixed(0)} MB; ` +
      `median of ${REPEATS} runs; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GB RAM; node ${process.version}; ` +
      `idle worker (node + tsx, no reading) peak RSS ${(idle.maxRssBytes / MB).toFixed(0)} MB`,
  );
  for (const cache of ["warm", "cold"] as const) {
    if (cache === "cold" && !evictFromPageCache(file)) {
      console.log("\ncold page cache: skipped (GNU dd with iflag=nocache unavailable)");
      continue;
    }
    if (cache === "warm") runPhase("plain", file); // fill the page cache once
    const results = new Map<string, Phase[]>();
    for (let r = 0; r < REPEATS; r++) {
      for (const mode of MODES) {
        if (cache === "cold") evictFromPageCache(file);
        const phase = runPhase(mode, file);
        const expected = mode === "plain" ? size : dataBytes;
        if (phase.bytes !== expected)
          throw new Error(`${mode} read ${phase.bytes} bytes, expected ${expected}`);
        results.set(mode, [...(results.get(mode) ?? []), phase]);
      }
    }
    const throughput = (mode: string) => median(results.get(mode)!.map((p) => p.bytes / p.seconds));
    const peak = (mode: string) => Math.max(...results.get(mode)!.map((p) => p.maxRssBytes));
    const plain = throughput("plain");
    console.log(
      `\n${cache} page cache${cache === "cold" ? " (file evicted with dd iflag=nocache before every phase)" : ""}`,
    );
    console.table(
      ROWS.map(([label, mode]) => ({
        phase: label,
        "MB/s": (throughput(mode) / MB).toFixed(0),
        "ratio to plain": (throughput(mode) / plain).toFixed(2),
        "peak RSS MB": (peak(mode) / MB).toFixed(0),
        "RSS above idle MB": ((peak(mode) - idle.maxRssBytes) / MB).toFixed(0),
      })),
    );
    for (const mode of ["tensors", "tensors-into"]) {
      const ratio = throughput(mode) / plain;
      const above = peak(mode) - idle.maxRssBytes;
      console.log(
        `${cache} ${mode}: throughput ratio ${ratio.toFixed(2)} (target >= 0.80 ${ratio >= 0.8 ? "MET" : "MISSED"}); ` +
          `RSS above idle ${(above / MB).toFixed(0)} MB, absolute ${(peak(mode) / MB).toFixed(0)} MB ` +
          `(target <= ${(budget / MB).toFixed(0)} MB: increment ${above <= budget ? "MET" : "MISSED"}, absolute ${peak(mode) <= budget ? "MET" : "MISSED"})`,
      );
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

// pnpm --filter @merge/strategies bench
//
// Merges synthetic LoRA experts with Mistral-7B target shapes (8 experts of rank 16 by default),
// one strategy per child process (so each peak RSS is its own), streaming module by module, and
// runs PEFT's add_weighted_adapter (PyTorch CPU, same thread count) on the same factors in the
// same run. Prints markdown tables. Environment:
//   BENCH_LAYERS (default 1)  BENCH_EXPERTS (8)  BENCH_RANK (16)  BENCH_THREADS (1)
//   BENCH_STRATEGIES  comma list of our strategies      (default below)
//   BENCH_PEFT        comma list of PEFT combinations   (default below; "" to skip PEFT)
//   BENCH_PYTHON      python with torch + peft          (default <repo>/.venv/bin/python)
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { makeFactors } from "./make-factors.js";
import { type BenchLayout, factorFileBytes } from "./shapes.js";

const HERE = import.meta.dirname;
const REPO = join(HERE, "..", "..", "..");
const env = (k: string, d: string) => process.env[k] ?? d;

const layout: BenchLayout = {
  layers: Number(env("BENCH_LAYERS", "1")),
  experts: Number(env("BENCH_EXPERTS", "8")),
  rank: Number(env("BENCH_RANK", "16")),
  alpha: 32,
};
const threads = Number(env("BENCH_THREADS", "1"));
const ours = env(
  "BENCH_STRATEGIES",
  "cat,linear,task_arithmetic,svd,osm,knots,dare_ties,ties,ties_svd",
)
  .split(",")
  .filter(Boolean);
const peft = env("BENCH_PEFT", "cat,linear,ties,dare_ties,magnitude_prune,svd,ties_svd")
  .split(",")
  .filter(Boolean);
const python = env("BENCH_PYTHON", join(REPO, ".venv", "bin", "python"));

// Our hyperparameters matched to PEFT's call: equal weights 1, TIES density 0.2, DARE p = 0.9
// (PEFT density 0.1), svd rank = 16 (PEFT's default: the experts' rank).
const HYPER: Record<string, Record<string, unknown>> = {
  ties: { density: 0.2 },
  ties_svd: { density: 0.2, rank: 16 },
  magnitude_prune: { density: 0.2 },
  dare_ties: { p: 0.9 },
  dare: { p: 0.9 },
  linear: { normalize: false },
  svd: { rank: 16 },
};
const PEFT_DENSITY: Record<string, number> = {
  dare_ties: 0.1,
  dare_linear: 0.1,
  dare_ties_svd: 0.1,
};

interface Row {
  side: "ours" | "peft";
  strategy: string;
  seconds: number;
  mergeSeconds: number;
  cpuSeconds?: number;
  maxRssMB: number;
}

function lastJson(out: string): Row {
  const line = out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .pop();
  if (line === undefined) throw new Error(`no result line in:\n${out}`);
  return JSON.parse(line) as Row;
}

const file = join(tmpdir(), `merge-bench-L${layout.layers}-E${layout.experts}-R${layout.rank}.bin`);
if (!existsSync(file) || statSync(file).size !== factorFileBytes(layout)) {
  console.error(
    `writing synthetic factors to ${file} (${(factorFileBytes(layout) / 2 ** 20).toFixed(0)} MiB)`,
  );
  await makeFactors(file, layout);
}
const args = (name: string) => [
  file,
  String(layout.layers),
  String(layout.experts),
  String(layout.rank),
  String(layout.alpha),
  name,
];

console.log(
  `# Benchmark: ${layout.layers} layer(s) × 7 Mistral-7B modules, ${layout.experts} experts, rank ${layout.rank}, ${threads} thread(s)`,
);
console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString()}`,
);
const rows: Row[] = [];
const print = (r: Row) =>
  console.log(
    `| ${r.side} | ${r.strategy} | ${r.mergeSeconds.toFixed(2)} | ${r.cpuSeconds === undefined ? "–" : r.cpuSeconds.toFixed(2)} | ${r.maxRssMB.toFixed(0)} |`,
  );
console.log(
  "\n| side | strategy | merge wall s | merge CPU s | peak RSS MB |\n| --- | --- | ---: | ---: | ---: |",
);

for (const name of ours) {
  const out = execFileSync(
    process.execPath,
    [
      "--conditions=source",
      "--import",
      "tsx",
      join(HERE, "run-strategy.ts"),
      ...args(name),
      JSON.stringify(HYPER[name] ?? {}),
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 },
  );
  const r = lastJson(out);
  rows.push(r);
  print(r);
}

if (peft.length > 0 && !existsSync(python)) {
  console.log(
    `\nPEFT baseline skipped: ${python} not found (set BENCH_PYTHON to a python with torch and peft).`,
  );
} else {
  for (const name of peft) {
    const out = execFileSync(
      python,
      [
        join(HERE, "peft_merge.py"),
        ...args(name),
        String(threads),
        String(PEFT_DENSITY[name] ?? 0.2),
      ],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
        maxBuffer: 1 << 20,
        env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
      },
    );
    const r = lastJson(out);
    rows.push(r);
    print(r);
  }
}

const formatRatio = (r: number) =>
  r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(1) : r.toPrecision(2);
const find = (side: string, s: string) => rows.find((r) => r.side === side && r.strategy === s);
const COMPARE: Array<[string, string, string]> = [
  ["cat", "cat", "same definition"],
  ["svd", "svd", "target ≥ 10×"],
  ["osm", "svd", "target ≥ 10× (factor-space)"],
  ["knots", "svd", "target ≥ 10× (factor-space)"],
  ["ties", "ties_svd", "same TIES on full ΔW (PEFT adds an SVD)"],
  ["ties_svd", "ties_svd", "same definition, both rank-16 output"],
  ["ties", "ties", "PEFT applies TIES to A and B separately (different method)"],
  ["dare_ties", "dare_ties", "PEFT applies DARE-TIES to A and B separately (different method)"],
  ["linear", "linear", "PEFT's linear mixes A and B separately (different method)"],
];
console.log("\n| ours | PEFT | PEFT time / our time | note |\n| --- | --- | ---: | --- |");
for (const [a, b, note] of COMPARE) {
  const x = find("ours", a);
  const y = find("peft", b);
  if (x && y)
    console.log(`| ${a} | ${b} | ${formatRatio(y.mergeSeconds / x.mergeSeconds)}× | ${note} |`);
}
const worst = Math.max(...rows.filter((r) => r.side === "ours").map((r) => r.maxRssMB));
console.log(`\nlargest peak RSS of our strategies: ${worst.toFixed(0)} MB (target ≤ 2048 MB)`);

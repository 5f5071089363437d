// `pnpm --filter @merge/mistral-onnx bench:routed`: decode-time cost of the routed side branch
// (issue 9) at Mistral-7B's layer shapes. A 7B model does not fit a small machine, so a random
// model with the 7B layer (hidden 4096, 32 q heads, 8 KV heads, head_dim 128, intermediate 14336)
// but few layers and a small vocab is generated in a temp dir, and built three ways:
//   folded  — the five r = 8 experts of q_proj and v_proj folded in (lowrank, deltaMode "fold")
//   lift    — the same experts as a routed delta, router lift / margin / top-1 (lift_routing)
//   smile   — routed, router norm / softmax_top_k / top-1 / T = 1
// Decode: prefill a prompt once, then time decode steps from that KV cache; several repetitions with
// the variants interleaved (so drifting load hits them alike), median kept. Then prefill of a
// longer prompt. The 32-layer extrapolation splits folded decode time by bytes read (see below).
// Env: BENCH_THREADS (default: all cores), BENCH_LAYERS (2), BENCH_VOCAB (4096), BENCH_REPS (5),
// BENCH_PROMPT (64), BENCH_DECODE_STEPS (32), BENCH_PREFILL (256), BENCH_BATCHES ("1,8"),
// BENCH_PYTHON, BENCH_KEEP=1 (keep and reuse the built ONNX models).
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildOnnxModel,
  type DeltaSource,
  type KvCache,
  MistralRunner,
  type RoutedExpertDelta,
  type RouterSpec,
  type WeightDelta,
} from "../src/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const PYTHON = process.env.BENCH_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const env = (k: string, d: number) => Number(process.env[k] ?? d);
const THREADS = env("BENCH_THREADS", availableParallelism());
const LAYERS = env("BENCH_LAYERS", 2);
const VOCAB = env("BENCH_VOCAB", 4096);
const REPS = env("BENCH_REPS", 5);
const PROMPT = env("BENCH_PROMPT", 64);
const STEPS = env("BENCH_DECODE_STEPS", 32);
const PREFILL = env("BENCH_PREFILL", 256);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,8").split(",").map(Number);
const KEEP = process.env.BENCH_KEEP === "1";

// Reference shapes (Mistral-7B-v0.1) and the issue's delta: 5 experts, r = 8, q_proj and v_proj.
const H = 4096;
const HEADS = 32;
const KV_HEADS = 8;
const HEAD_DIM = 128;
const INTER = 14336;
const REF_LAYERS = 32;
const REF_VOCAB = 32000;
const EXPERTS = 5;
const RANK = 8;
const MODULES: Record<string, number> = {
  "self_attn.q_proj": HEADS * HEAD_DIM,
  "self_attn.v_proj": KV_HEADS * HEAD_DIM,
};

const ROUTERS: Record<string, RouterSpec> = {
  lift: { score: "lift", gate: "margin", topK: 1, temperature: 1 },
  smile: { score: "norm", gate: "softmax_top_k", topK: 1, temperature: 1 },
};

// ---- random expert factors (seeded): A rank × in with orthonormal rows, B out × rank small.
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

/** Rows of a random rank × n Gaussian matrix, orthonormalized (QR by modified Gram–Schmidt). */
function orthonormalRows(rank: number, n: number, rnd: () => number): Float32Array {
  const rows = Array.from({ length: rank }, () => Float64Array.from({ length: n }, rnd));
  for (let k = 0; k < rank; k++) {
    const v = rows[k] as Float64Array;
    for (let j = 0; j < k; j++) {
      const u = rows[j] as Float64Array;
      let d = 0;
      for (let i = 0; i < n; i++) d += (u[i] as number) * (v[i] as number);
      for (let i = 0; i < n; i++) v[i] = (v[i] as number) - d * (u[i] as number);
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += (v[i] as number) ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < n; i++) v[i] = (v[i] as number) / norm;
  }
  const out = new Float32Array(rank * n);
  rows.forEach((r, k) => {
    out.set(r, k * n);
  });
  return out;
}

function makeExperts(module: string, out: number): RoutedExpertDelta[] {
  let h = 0;
  for (const c of module) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  const rnd = gaussian(h);
  return Array.from({ length: EXPERTS }, () => ({
    A: orthonormalRows(RANK, H, rnd),
    B: Float32Array.from({ length: out * RANK }, () => 0.01 * rnd()),
    rank: RANK,
  }));
}

/** The five experts stacked into one rank-40 lowrank delta: ΔW = Σ_i B_i A_i. */
function stacked(experts: RoutedExpertDelta[], out: number): WeightDelta {
  const r = experts.length * RANK;
  const A = new Float32Array(r * H);
  const B = new Float32Array(out * r);
  experts.forEach((e, i) => {
    A.set(e.A, i * RANK * H);
    for (let o = 0; o < out; o++)
      for (let k = 0; k < RANK; k++) B[o * r + i * RANK + k] = e.B[o * RANK + k] as number;
  });
  return { kind: "lowrank", A, B, rank: r };
}

function deltasFor(variant: string): DeltaSource {
  return {
    async get(module) {
      const suffix = Object.keys(MODULES).find((s) => module.endsWith(`.${s}`));
      if (!suffix) return undefined;
      const out = MODULES[suffix] as number;
      const experts = makeExperts(module, out);
      if (variant === "folded") return stacked(experts, out);
      return { kind: "routed", experts, router: ROUTERS[variant] as RouterSpec };
    },
  };
}

// ---- model
const modelDir = join(tmpdir(), `mistral-onnx-routed-7b-layer-L${LAYERS}-V${VOCAB}`);
if (!existsSync(join(modelDir, "model.safetensors"))) {
  console.error(`generating random ${LAYERS}-layer 7B-shaped model in ${modelDir} ...`);
  execFileSync(
    PYTHON,
    [
      join(ROOT, "tools", "fixtures", "mistral-onnx", "make_bench_model.py"),
      modelDir,
      ...["--size", "7b"],
      ...["--hidden", String(H), "--intermediate", String(INTER), "--layers", String(LAYERS)],
      ...["--heads", String(HEADS), "--kv-heads", String(KV_HEADS), "--vocab", String(VOCAB)],
    ],
    { stdio: "inherit" },
  );
}

const VARIANTS = ["folded", "lift", "smile"] as const;
type Variant = (typeof VARIANTS)[number];
const LABEL: Record<Variant, string> = {
  folded: "folded (lowrank, deltaMode fold)",
  lift: "routed lift / margin / top-1",
  smile: "routed norm / softmax_top_k / top-1",
};
const built: Record<string, { onnxPath: string; buildS: number; dataMb: number }> = {};
for (const v of VARIANTS) {
  const outDir = join(tmpdir(), `mistral-onnx-routed-${v}-L${LAYERS}-V${VOCAB}`);
  const t = performance.now();
  const onnxPath = join(outDir, "model.onnx");
  const reuse = KEEP && existsSync(onnxPath);
  if (!reuse) {
    console.error(`building ${v} ...`);
    await buildOnnxModel({ modelDir, outDir, deltas: deltasFor(v), deltaMode: "fold" });
  }
  built[v] = {
    onnxPath,
    buildS: reuse ? Number.NaN : (performance.now() - t) / 1000,
    dataMb: statSync(`${onnxPath}.data`).size / 2 ** 20,
  };
}

console.log(`# routed side branch: decode overhead — ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; threads ${THREADS}; load average at start ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
);
console.log(
  `model: random, 7B layer shapes (hidden ${H}, ${HEADS}/${KV_HEADS} heads × ${HEAD_DIM}, intermediate ${INTER}), ${LAYERS} layers, vocab ${VOCAB}, fp32 ONNX; deltas: ${EXPERTS} experts × r ${RANK} on q_proj and v_proj`,
);

const runners = {} as Record<Variant, MistralRunner>;
for (const v of VARIANTS) {
  runners[v] = await MistralRunner.create({
    onnxPath: (built[v] as { onnxPath: string }).onnxPath,
    modelDir,
    threads: THREADS,
  });
}

let seed = 12345;
const token = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return 3 + (seed % (VOCAB - 3));
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

// Sanity: the routed branch is live (its logits differ from the folded model's, and from each other).
{
  const ids = [Array.from({ length: 16 }, token)];
  const step = {
    inputIds: ids,
    attentionMask: [ids[0]!.map(() => 1)],
    positionIds: [ids[0]!.map((_, i) => i)],
    logitsToKeep: 1,
  };
  const logits = {} as Record<Variant, Float32Array>;
  for (const v of VARIANTS) logits[v] = (await runners[v].forward(step)).logits;
  const maxDiff = (a: Float32Array, b: Float32Array) =>
    a.reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] as number))), 0);
  console.log(
    `sanity: max |Δlogit| folded vs lift ${maxDiff(logits.folded, logits.lift).toExponential(2)}, folded vs smile ${maxDiff(logits.folded, logits.smile).toExponential(2)}, lift vs smile ${maxDiff(logits.lift, logits.smile).toExponential(2)}`,
  );
}

/** The KV cache after prefilling `ids` (computed once per variant and batch, reused by every rep). */
async function prefilled(runner: MistralRunner, ids: number[][]): Promise<KvCache> {
  const r = await runner.forward({
    inputIds: ids,
    attentionMask: ids.map((r) => r.map(() => 1)),
    positionIds: ids.map((row) => row.map((_, i) => i)),
    logitsToKeep: 1,
  });
  return r.present;
}

/** STEPS timed decode steps on top of a prefilled PROMPT-token cache; returns ms per step. */
async function decodeMs(runner: MistralRunner, start: KvCache, b: number): Promise<number> {
  let mask = Array.from({ length: b }, () => Array.from({ length: PROMPT }, () => 1));
  let past = start;
  const next = Array.from({ length: STEPS }, () => Array.from({ length: b }, () => [token()]));
  const t = performance.now();
  for (let s = 0; s < STEPS; s++) {
    mask = mask.map((row) => [...row, 1]);
    const r = await runner.forward({
      inputIds: next[s] as number[][],
      attentionMask: mask,
      positionIds: mask.map(() => [PROMPT + s]),
      past,
      logitsToKeep: 1,
    });
    past = r.present;
  }
  return (performance.now() - t) / STEPS;
}

const decode: Record<number, Record<Variant, number[]>> = {};
for (const b of BATCHES) {
  const ids = Array.from({ length: b }, () => Array.from({ length: PROMPT }, token));
  // Warm-up: a short prompt and a few decode steps per variant (allocations, kernel selection).
  for (const v of VARIANTS)
    await runners[v].generateIds(
      ids.map((r) => r.slice(0, 8)),
      { maxNewTokens: 3 },
    );
  decode[b] = { folded: [], lift: [], smile: [] };
  const start = {} as Record<Variant, KvCache>;
  for (const v of VARIANTS) start[v] = await prefilled(runners[v], ids);
  for (let rep = 0; rep < REPS; rep++) {
    // Rotate the order each repetition so no variant always runs first.
    for (let k = 0; k < VARIANTS.length; k++) {
      const v = VARIANTS[(rep + k) % VARIANTS.length] as Variant;
      decode[b][v].push(await decodeMs(runners[v], start[v], b));
    }
  }
}

const prefill: Record<Variant, number[]> = { folded: [], lift: [], smile: [] };
{
  const ids = [Array.from({ length: PREFILL }, token)];
  const step = {
    inputIds: ids,
    attentionMask: [ids[0]!.map(() => 1)],
    positionIds: [ids[0]!.map((_, i) => i)],
    logitsToKeep: 1,
  };
  for (const v of VARIANTS) await runners[v].forward(step); // warm-up at this length
  for (let rep = 0; rep < Math.max(3, Math.ceil(REPS / 2)); rep++) {
    for (let k = 0; k < VARIANTS.length; k++) {
      const v = VARIANTS[(rep + k) % VARIANTS.length] as Variant;
      const t = performance.now();
      await runners[v].forward(step);
      prefill[v].push(performance.now() - t);
    }
  }
}
for (const v of VARIANTS) await runners[v].close();

// ---- report
const pct = (x: number, base: number) =>
  `${x >= base ? "+" : ""}${((100 * (x - base)) / base).toFixed(1)}%`;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
console.log(
  `\n## decode (prompt ${PROMPT} tokens, ${STEPS} decode steps with the KV cache, median of ${REPS} interleaved repetitions, threads ${THREADS})`,
);
console.log("| variant | batch | decode ms/step (median) | min–max | tok/s | overhead vs folded |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const b of BATCHES) {
  const d = decode[b] as Record<Variant, number[]>;
  const base = median(d.folded);
  for (const v of VARIANTS) {
    const m = median(d[v]);
    console.log(
      `| ${LABEL[v]} | ${b} | ${m.toFixed(1)} | ${spread(d[v])} | ${((1000 * b) / m).toFixed(2)} | ${v === "folded" ? "–" : pct(m, base)} |`,
    );
  }
}
const prefillReps = prefill.folded.length;
console.log(`\n## prefill (batch 1, ${PREFILL} tokens, median of ${prefillReps})`);
console.log("| variant | prefill ms | min–max | tok/s | overhead vs folded |");
console.log("| --- | --- | --- | --- | --- |");
const pBase = median(prefill.folded);
for (const v of VARIANTS) {
  const m = median(prefill[v]);
  console.log(
    `| ${LABEL[v]} | ${m.toFixed(0)} | ${spread(prefill[v])} | ${((1000 * PREFILL) / m).toFixed(1)} | ${v === "folded" ? "–" : pct(m, pBase)} |`,
  );
}

// ---- extrapolation to 32 layers and a 32k vocab.
// Decode at batch ≤ 8 reads every weight once per step, so folded time is split over the layers
// and lm_head in proportion to their fp32 bytes (the embedding Gather reads one row per token and
// is left out; KV-cache reads at ≤ 100 positions are < 0.1% of a layer's weights). The routed
// branch's extra time is per layer (q/v of every layer carry it), so it scales with layers; lm_head
// does not, and grows from vocab VOCAB to 32000.
const layerBytes =
  4 * (H * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * H + 3 * H * INTER);
const headBytes = (vocab: number) => 4 * vocab * H;
console.log(
  `\n## extrapolation to ${REF_LAYERS} layers, vocab ${REF_VOCAB} (folded time split by bytes read: a layer ${(layerBytes / 2 ** 20).toFixed(0)} MiB, lm_head ${(headBytes(VOCAB) / 2 ** 20).toFixed(0)} MiB here, ${(headBytes(REF_VOCAB) / 2 ** 20).toFixed(0)} MiB at 32k; the routed cost is per layer)`,
);
console.log(
  "| variant | batch | measured overhead | per layer (ms) | est. 32-layer decode ms/step folded | est. overhead at 32 layers |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const b of BATCHES) {
  const d = decode[b] as Record<Variant, number[]>;
  const base = median(d.folded);
  const perLayer = (base * layerBytes) / (LAYERS * layerBytes + headBytes(VOCAB));
  const ref = REF_LAYERS * perLayer + (perLayer * headBytes(REF_VOCAB)) / layerBytes;
  for (const v of ["lift", "smile"] as const) {
    const extraPerLayer = (median(d[v]) - base) / LAYERS;
    console.log(
      `| ${LABEL[v]} | ${b} | ${pct(median(d[v]), base)} | ${extraPerLayer.toFixed(2)} | ${ref.toFixed(0)} | ${((100 * REF_LAYERS * extraPerLayer) / ref).toFixed(1)}% |`,
    );
  }
}
for (const v of VARIANTS) {
  const x = built[v] as { buildS: number; dataMb: number };
  console.log(
    `- ${v}: model.onnx.data ${x.dataMb.toFixed(0)} MiB, build ${Number.isNaN(x.buildS) ? "reused (BENCH_KEEP)" : `${x.buildS.toFixed(1)} s`}`,
  );
}
console.log(
  `- load average at end: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
);
if (!KEEP) {
  for (const v of VARIANTS)
    await rm(dirname((built[v] as { onnxPath: string }).onnxPath), {
      recursive: true,
      force: true,
    });
}
console.log(`- random model (kept for reruns): ${modelDir}`);

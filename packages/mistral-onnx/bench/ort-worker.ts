// One onnxruntime measurement in its own process, so its peak RSS is its own. Prints one JSON line.
import { readFileSync } from "node:fs";
import { MistralRunner } from "../src/index.js";

interface Args {
  onnxPath: string;
  modelDir: string;
  threads: number;
  promptLen: number;
  decodeSteps: number;
  batches: number[];
  /** Repetitions; the fastest is kept (small models are noisy). */
  reps: number;
  allowSpinning?: boolean;
}

const args = JSON.parse(process.argv[2] as string) as Args;
const t0 = performance.now();
const runner = await MistralRunner.create({
  onnxPath: args.onnxPath,
  modelDir: args.modelDir,
  threads: args.threads,
});
const loadS = (performance.now() - t0) / 1000;
const V = runner.config.vocabSize;

// Deterministic pseudo-random token ids (LCG) in [3, V).
let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return 3 + (seed % (V - 3));
};

async function measure(ids: number[][], mask: number[][], pos: number[][]) {
  const b = ids.length;
  let t = performance.now();
  let r = await runner.forward({
    inputIds: ids,
    attentionMask: mask,
    positionIds: pos,
    logitsToKeep: 1,
  });
  const prefillS = (performance.now() - t) / 1000;
  let attn = mask;
  t = performance.now();
  for (let s = 0; s < args.decodeSteps; s++) {
    const next = Array.from({ length: b }, (_, i) => {
      let best = 0;
      for (let v = 1; v < V; v++)
        if ((r.logits[i * V + v] as number) > (r.logits[i * V + best] as number)) best = v;
      return [best];
    });
    attn = attn.map((row) => [...row, 1]);
    r = await runner.forward({
      inputIds: next,
      attentionMask: attn,
      positionIds: next.map(() => [args.promptLen + s]),
      past: r.present,
      logitsToKeep: 1,
    });
  }
  const decodeS = (performance.now() - t) / 1000;
  return { prefillS, decodeS };
}

const results = [];
for (const b of args.batches) {
  const ids = Array.from({ length: b }, () => Array.from({ length: args.promptLen }, rand));
  const mask = ids.map((r) => r.map(() => 1));
  const pos = ids.map((r) => r.map((_, i) => i));
  // Warm-up: a short prompt and two decode steps (allocations, kernel selection).
  await runner.generateIds(
    ids.map((r) => r.slice(0, 8)),
    { maxNewTokens: 3 },
  );
  let prefillS = Number.POSITIVE_INFINITY;
  let decodeS = Number.POSITIVE_INFINITY;
  for (let rep = 0; rep < args.reps; rep++) {
    const m = await measure(ids, mask, pos);
    prefillS = Math.min(prefillS, m.prefillS);
    decodeS = Math.min(decodeS, m.decodeS);
  }
  results.push({
    batch: b,
    prefillTokS: (b * args.promptLen) / prefillS,
    decodeTokS: (b * args.decodeSteps) / decodeS,
  });
}
await runner.close();
/** VmHWM: this process's own high-water mark (maxRSS survives exec, so it can report the parent's). */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
console.log(JSON.stringify({ loadS, peakRssMb: peakRssMb(), results }));

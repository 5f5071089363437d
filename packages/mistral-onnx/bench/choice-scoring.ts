// `pnpm --filter @merge/mistral-onnx bench:choice-scoring`: seconds per multiple-choice row of
// choiceScoring "batched" (all prompt + choice sequences of a row as one left-padded forward, no
// cache) next to the named peer "shared-cache" (the prompt once, then one batch-1 forward per
// choice on its KV cache), on the CPU provider, at the competition CSV's prompt lengths (median
// 34, p90 110, max 345 Mistral tokens) with 4 choices of different lengths. Model: a small random
// Mistral-shaped model (4 layers of the 1B shape: hidden 2048, 16 query / 4 KV heads of 128,
// vocabulary 4096) generated in a temp dir. Also checks that both give the same scores.
// CPU only: the GPU case (the KV cache crossing host↔device per forward under onnxruntime-node's
// CUDA provider, the weights read once per forward) is what "batched" is for, and is not measured
// here. Prints a markdown table.
// Env: BENCH_THREADS (default 2), BENCH_PROMPT_TOKENS (default "34,110,345"), BENCH_REPS
// (default 3), BENCH_FUSED_OPS (default "none,contrib"), BENCH_PYTHON.
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { smallBenchModel } from "./small-model.js";
import {
  buildOnnxModel,
  CHOICE_SCORINGS,
  type ChoiceScoring,
  type FusedOps,
  MistralRunner,
} from "../src/index.js";

const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const PROMPT_TOKENS = (process.env.BENCH_PROMPT_TOKENS ?? "34,110,345").split(",").map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const FUSED = (process.env.BENCH_FUSED_OPS ?? "none,contrib").split(",") as FusedOps[];
const CHOICES = [" no", " yes", " seven", " green apples"];
const PEER: ChoiceScoring = "shared-cache";

function smallModel(): string {
  return smallBenchModel("mistral-onnx-bench-choice-scoring-small");
}

/** A text of about `n` tokens (BOS included) and 4 choices of different lengths. */
function row(runner: MistralRunner, n: number): { prompt: string; choices: string[] } {
  const tok = runner.tokenizer;
  const words = "the quick brown fox jumps over a lazy dog and then ".repeat(n);
  const prompt = tok.decode(tok.encode(words).slice(1, n), { skipSpecialTokens: true });
  return { prompt, choices: CHOICES };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const modelDir = smallModel();
console.log(`# choiceScoring benchmark — ${new Date().toISOString()}`);
console.log(
  `machine: ${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; CPU provider, threads ${THREADS}; fp32; load average at start ${loadavg()[0]?.toFixed(1)}; median of ${REPS}`,
);
console.log(
  "\n| fusedOps | prompt tokens | choice tokens | choiceScoring | forwards / row | s / row | speed vs shared-cache | max abs Δ sum |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const fusedOps of FUSED) {
  const outDir = join(tmpdir(), `mistral-onnx-bench-choice-scoring-${fusedOps}`);
  const { onnxPath } = await buildOnnxModel({ modelDir, outDir, fusedOps });
  const runner = await MistralRunner.create({ onnxPath, modelDir, threads: THREADS });
  for (const n of PROMPT_TOKENS) {
    const { prompt, choices } = row(runner, n);
    const promptLen = runner.tokenizer.encode(prompt).length;
    const lens = choices.map((c) => runner.tokenizer.encode(c, { addSpecialTokens: false }).length);
    const times = new Map<ChoiceScoring, number>();
    const sums = new Map<ChoiceScoring, number[]>();
    for (const scoring of [PEER, ...CHOICE_SCORINGS.filter((s) => s !== PEER)]) {
      await runner.scoreContinuations(prompt, choices, { scoring }); // warm up
      const t: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const start = performance.now();
        const s = await runner.scoreContinuations(prompt, choices, { scoring });
        t.push((performance.now() - start) / 1000);
        sums.set(
          scoring,
          s.map((x) => x.sum),
        );
      }
      times.set(scoring, median(t));
      const peer = sums.get(PEER) as number[];
      const diff = Math.max(
        ...(sums.get(scoring) as number[]).map((x, i) => Math.abs(x - (peer[i] as number))),
      );
      if (!Number.isFinite(diff))
        throw new Error(`${scoring}: non-finite scores ${sums.get(scoring)}`);
      const forwards = scoring === "batched" ? 1 : 1 + lens.filter((l) => l > 1).length;
      const rel = `${((times.get(PEER) as number) / (times.get(scoring) as number)).toFixed(2)}×`;
      console.log(
        `| ${fusedOps} | ${promptLen} | ${lens.join(", ")} | ${scoring} | ${forwards} | ${(times.get(scoring) as number).toFixed(4)} | ${rel} | ${diff.toExponential(1)} |`,
      );
    }
  }
  await runner.close();
}

// fp32/fp16 on a GPU provider against the CPU provider, on the same built model: logits of a
// left-padded batch, multiple-choice scores over a shared prompt cache, and greedy tokens.
// Usage: node provider-check.mjs (bundled by tools/gpu/prepare.sh) <cuda|webgpu> [modelDir=data/zoo/base] [out.json]
// Each build variant is checked: dtype fp32/fp16 × fusedOps none/contrib.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type BuildOnnxModelOptions,
  buildOnnxModel,
  type ExecutionProvider,
  FUSED_OPS,
  MistralRunner,
} from "../src/index.js";

const [provider = "cuda", modelDir = "data/zoo/base", outFile] = process.argv.slice(2) as [
  ExecutionProvider,
  string?,
  string?,
];
const prompts = [
  "The capital of France is",
  "Q: What is 12 plus 7?\nA:",
  "def fibonacci(n):\n    ",
];
const choices = [" Paris", " London", " a city in Europe"];

function maxAbs(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  let abs = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs((a[i] as number) - (b[i] as number)));
    ref = Math.max(ref, Math.abs(b[i] as number));
  }
  return { abs, rel: abs / ref };
}

const results: Record<string, unknown> = { provider, modelDir };
const variants: Array<{ name: string; build: Partial<BuildOnnxModelOptions> }> = [];
for (const dtype of ["fp32", "fp16"] as const)
  for (const fusedOps of FUSED_OPS)
    variants.push({ name: `${dtype}-${fusedOps}`, build: { dtype, fusedOps } });
for (const { name, build } of variants) {
  const outDir = await mkdtemp(join(tmpdir(), `provider-check-${name}-`));
  await buildOnnxModel({ modelDir, outDir, ...build });
  const onnxPath = join(outDir, "model.onnx");
  const open = (p: ExecutionProvider) =>
    MistralRunner.create({ onnxPath, modelDir, executionProvider: p, onWarning: console.warn });
  const cpu = await open("cpu");
  const gpu = await open(provider);
  const rows = prompts.map((p) => cpu.tokenizer.encode(p));
  // Padding positions hold unspecified values: compare the last position of each row only.
  const l = maxAbs(
    await gpu.logits(rows, { lastOnly: true }),
    await cpu.logits(rows, { lastOnly: true }),
  );
  const sg = await gpu.scoreContinuations(prompts[0] as string, choices);
  const sc = await cpu.scoreContinuations(prompts[0] as string, choices);
  const scoreDiff = Math.max(...sg.map((s, i) => Math.abs(s.sum - (sc[i] as { sum: number }).sum)));
  const gg = await gpu.generateIds(rows, { maxNewTokens: 16 });
  const gc = await cpu.generateIds(rows, { maxNewTokens: 16 });
  const same = gg.filter((r, i) => JSON.stringify(r) === JSON.stringify(gc[i])).length;
  results[name] = {
    providerInUse: gpu.executionProvider,
    lastLogitsMaxAbs: l.abs,
    lastLogitsMaxRel: l.rel,
    choiceScoreMaxAbs: scoreDiff,
    choiceArgmaxSame:
      sg.indexOf(sg.reduce((a, b) => (b.sum > a.sum ? b : a))) ===
      sc.indexOf(sc.reduce((a, b) => (b.sum > a.sum ? b : a))),
    greedyRowsIdentical: `${same}/${rows.length}`,
  };
  console.log(name, JSON.stringify(results[name]));
  await gpu.close();
  await cpu.close();
}
if (outFile) await writeFile(outFile, `${JSON.stringify(results, null, 2)}\n`);

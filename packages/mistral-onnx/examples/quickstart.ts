// Build the tiny test model, score two choices and generate a few tokens.
// Run from packages/mistral-onnx: npx tsx --conditions=source examples/quickstart.ts [modelDir]
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildOnnxModel, MistralRunner } from "../src/index.js";

const modelDir = process.argv[2] ?? join(import.meta.dirname, "..", "test", "fixtures", "mistral");
const { onnxPath } = await buildOnnxModel({
  modelDir,
  outDir: join(tmpdir(), "mistral-onnx-quickstart"),
  onProgress: (done, total, what) =>
    process.stdout.write(`\rbuilding ${done}/${total} ${what}`.padEnd(80)),
});
console.log(`\nwrote ${onnxPath}`);

const runner = await MistralRunner.create({ onnxPath, modelDir });
console.log(
  await runner.scoreContinuations("Question: What is the capital of France? Answer:", [
    " Paris",
    " London",
  ]),
);
console.log(
  await runner.generate(["The quick brown fox", "Hello world!"], {
    maxNewTokens: 12,
    stop: ["\n"],
  }),
);
await runner.close();

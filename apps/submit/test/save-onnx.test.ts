import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MistralRunner, ONNX_FILE } from "@merge/mistral-onnx";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// transformers.js runs in a process of its own (its onnxruntime-node cannot share ours); the
// worker and its devDependency live in @merge/mistral-onnx, which owns the export.
import { runTransformersJs } from "../../../packages/mistral-onnx/test/transformers-js-run.js";
import { REPO, runCli } from "./helpers.js";

const TOL = 1e-4;
const ZOO_BASE = join(REPO, "data/zoo/base");
const PROMPTS = [
  "Question: What is the capital of France?\nAnswer:",
  "Translate to French: good morning",
  "2 + 2 =",
];

/** Max |a − b| over all entries. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe("--save-onnx on the embedded zoo (routed default, lift_routing)", () => {
  let dir: string;
  let save: string;
  let runner: MistralRunner;
  let exported: MistralRunner;
  let cli: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "submit-save-onnx-"));
    save = join(dir, "onnx-export");
    cli = await runCli(
      [
        "--config",
        "configs/embedded.yaml",
        "--merge-only",
        "--save-onnx",
        save,
        "--out",
        join(dir, "out", "test.csv"),
        "--no-progress",
      ],
      { LORA_MERGE_CACHE: join(dir, "cache") },
    );
    expect(cli.code, cli.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report.method).toBe("lift_routing");
    expect(report.resultKind).toBe("routed");
    expect(report.savedOnnx).toBe(save);
    runner = await MistralRunner.create({
      onnxPath: join(report.cache.dir, ONNX_FILE),
      modelDir: ZOO_BASE,
      threads: 1,
    });
    exported = await MistralRunner.create({
      onnxPath: join(save, "onnx", "model.onnx"),
      modelDir: ZOO_BASE,
      threads: 1,
    });
  }, 120_000);
  afterAll(async () => {
    await runner?.close();
    await exported?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes the transformers.js layout and answers no CSV", async () => {
    expect(cli.stderr).toMatch(/ONNX model for transformers\.js written to .*onnx-export/);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
      expect((await stat(join(save, f))).isFile()).toBe(true);
    }
    expect((await stat(join(save, "onnx", "model.onnx_data"))).size).toBeGreaterThan(0);
    await expect(stat(join(dir, "out", "test.csv"))).rejects.toThrow();
  });

  it("transformers.js gives MistralRunner's logits, also for a second step through the KV cache", async () => {
    const rows = PROMPTS.map((p) => runner.tokenizer.encode(p));
    const V = runner.config.vocabSize;
    const last = rows[0] as number[];
    const split = last.length - 2;
    const tjs = await runTransformersJs(save, [
      ...rows.map((r) => ({ forward: r })),
      { forward: last.slice(0, split) },
      { forward: last.slice(split), past: rows.length },
    ]);
    for (const [i, row] of rows.entries()) {
      const got = tjs.results[i];
      expect(got?.dims).toEqual([1, row.length, V]);
      expect(maxDiff(got?.logits as Float32Array, await runner.logits([row]))).toBeLessThanOrEqual(
        TOL,
      );
    }
    const full = await runner.logits([last]);
    const second = tjs.results[rows.length + 1]?.logits as Float32Array;
    expect(maxDiff(second, full.subarray(split * V))).toBeLessThanOrEqual(TOL);
  });

  it("the exported graph loads in MistralRunner with the cached build's results", async () => {
    const rows = PROMPTS.map((p) => runner.tokenizer.encode(p));
    expect(await exported.logits(rows, { lastOnly: true })).toEqual(
      await runner.logits(rows, { lastOnly: true }),
    );
    expect(await exported.generateIds(rows, { maxNewTokens: 6 })).toEqual(
      await runner.generateIds(rows, { maxNewTokens: 6 }),
    );
  });
});

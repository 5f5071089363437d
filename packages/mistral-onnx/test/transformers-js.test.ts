import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildOnnxModel,
  exportTransformersJs,
  IO,
  MistralOnnxError,
  MistralRunner,
  ONNX_DATA_FILE,
} from "../src/index.js";
import { onnx } from "../src/onnx/proto.js";
import {
  FIXTURES,
  type LogitsReference,
  maxDiffValid,
  type ModelReference,
  readLogitsReference,
  readReferenceJson,
  tempDir,
} from "./helpers.js";
import { runTransformersJs, type TransformersJsAnswer } from "./transformers-js-run.js";

const TOL = 1e-4;
const modelDir = join(FIXTURES, "mistral");

async function decodeModel(path: string) {
  return onnx.ModelProto.decode(await readFile(path));
}

describe("exportTransformersJs (fp32, the mistral fixture)", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let buildOnnx: string;
  let out: string;
  let runner: MistralRunner;
  let exportedRunner: MistralRunner;
  let ref: LogitsReference;
  let json: ModelReference;
  let tjs: TransformersJsAnswer;
  // Where each kind of step starts in tjs.results.
  let at: { rows: number; split: number; generate: number; tokenize: number };
  let full: { b: number; split: number };
  const GENERATIONS = 5;

  beforeAll(async () => {
    t = await tempDir("tjs");
    buildOnnx = (await buildOnnxModel({ modelDir, outDir: join(t.dir, "build") })).onnxPath;
    out = join(t.dir, "export");
    const result = await exportTransformersJs({ onnxPath: buildOnnx, modelDir, outDir: out });
    expect(result.dtype).toBe("fp32");
    runner = await MistralRunner.create({ onnxPath: buildOnnx, modelDir, threads: 1 });
    exportedRunner = await MistralRunner.create({
      onnxPath: result.onnxPath,
      modelDir,
      threads: 1,
    });
    ref = await readLogitsReference(join(modelDir, "reference.safetensors"));
    json = await readReferenceJson("mistral");
    const b = ref.rows.findIndex((r) => r.length === ref.seq);
    const row = ref.rows[b] as number[];
    full = { b, split: row.length - 3 };
    const gens = json.generations.slice(0, GENERATIONS);
    at = {
      rows: 0,
      split: ref.rows.length,
      generate: ref.rows.length + 2,
      tokenize: ref.rows.length + 2 + GENERATIONS,
    };
    tjs = await runTransformersJs(out, [
      ...ref.rows.map((r) => ({ forward: r })),
      { forward: row.slice(0, full.split) },
      { forward: row.slice(full.split), past: at.split },
      ...gens.map((g) => ({ generate: g.promptIds, maxNewTokens: 10 })),
      ...gens.map((g) => ({ tokenize: g.prompt })),
    ]);
  });
  afterAll(async () => {
    await runner?.close();
    await exportedRunner?.close();
    await t?.cleanup();
  });

  it("writes transformers.js' layout: onnx/model.onnx pointing at onnx/model.onnx_data, config and tokenizer", async () => {
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
      expect((await stat(join(out, f))).isFile()).toBe(true);
    }
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config.model_type).toBe("mistral");
    // The fixture has no generation_config.json: one is derived from config.json's token ids.
    expect(JSON.parse(await readFile(join(out, "generation_config.json"), "utf8"))).toEqual({
      _from_model_config: true,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(config["transformers.js_config"]).toEqual({
      dtype: "fp32",
      use_external_data_format: true,
    });
    const m = await decodeModel(join(out, "onnx", "model.onnx"));
    const external = (m.graph?.initializer ?? []).filter(
      (x) => x.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL,
    );
    expect(external.length).toBeGreaterThan(0);
    const locations = new Set(
      external.map((x) => x.externalData?.find((e) => e.key === "location")?.value),
    );
    expect([...locations]).toEqual(["model.onnx_data"]);
    // The weights are the build's, byte for byte (hard-linked or copied).
    const built = await readFile(join(dirname(buildOnnx), ONNX_DATA_FILE));
    expect(Buffer.compare(await readFile(join(out, "onnx", "model.onnx_data")), built)).toBe(0);
    // The cached build is left as it was.
    const source = await decodeModel(buildOnnx);
    expect(
      source.graph?.initializer
        ?.find((x) => x.name === "model.embed_tokens.weight")
        ?.externalData?.find((e) => e.key === "location")?.value,
    ).toBe(ONNX_DATA_FILE);
    expect(source.graph?.input?.map((i) => i.name)).toContain(IO.logitsToKeep);
  });

  it("the graph's inputs are exactly the ones transformers.js feeds (no num_logits_to_keep)", async () => {
    const m = await decodeModel(join(out, "onnx", "model.onnx"));
    const names = m.graph?.input?.map((i) => i.name);
    const L = runner.config.numLayers;
    expect(names).toEqual([
      "input_ids",
      "attention_mask",
      "position_ids",
      ...Array.from({ length: L }, (_, l) => [
        `past_key_values.${l}.key`,
        `past_key_values.${l}.value`,
      ]).flat(),
    ]);
    expect(tjs.inputNames).toEqual(names);
  });

  it("loads in MistralRunner and gives the build's logits and generations", async () => {
    const rows = ref.rows.slice(0, 3);
    expect(await exportedRunner.logits(rows)).toEqual(await runner.logits(rows));
    expect(await exportedRunner.logits(rows, { lastOnly: true })).toEqual(
      await runner.logits(rows, { lastOnly: true }),
    );
    const prompts = json.generations.slice(0, 4).map((g) => g.promptIds);
    expect(await exportedRunner.generateIds(prompts, { maxNewTokens: 8 })).toEqual(
      await runner.generateIds(prompts, { maxNewTokens: 8 }),
    );
  });

  it("transformers.js logits equal transformers' (Python reference) and MistralRunner's", async () => {
    const V = runner.config.vocabSize;
    for (let b = 0; b < ref.batch; b++) {
      const row = ref.rows[b] as number[];
      const got = tjs.results[at.rows + b];
      expect(got?.dims).toEqual([1, row.length, V]);
      const logits = got?.logits as Float32Array;
      const all = row.map(() => 1);
      expect(maxDiffValid(logits, await runner.logits([row]), [all], V)).toBeLessThanOrEqual(TOL);
      // The reference batch is left-padded: row b's tokens are its last row.length positions.
      const start = (b * ref.seq + ref.seq - row.length) * V;
      const pyRef = ref.logits.subarray(start, (b + 1) * ref.seq * V);
      expect(maxDiffValid(logits, pyRef, [all], V)).toBeLessThanOrEqual(TOL);
    }
  });

  it("a second step through past_key_values gives the full pass's logits", () => {
    const V = runner.config.vocabSize;
    const second = tjs.results[at.split + 1];
    const n = ref.seq - full.split;
    expect(second?.dims).toEqual([1, n, V]);
    const pyRef = ref.logits.subarray(
      (full.b * ref.seq + full.split) * V,
      (full.b + 1) * ref.seq * V,
    );
    const all = new Array<number>(n).fill(1);
    expect(maxDiffValid(second?.logits as Float32Array, pyRef, [all], V)).toBeLessThanOrEqual(TOL);
  });

  it("generate() (greedy, with the KV cache) gives MistralRunner's tokens", async () => {
    const eos = runner.tokenizer.eosId;
    const gens = json.generations.slice(0, GENERATIONS);
    for (const [i, g] of gens.entries()) {
      const produced = (tjs.results[at.generate + i]?.ids ?? []).slice(g.promptIds.length);
      // transformers.js keeps the EOS that ended the row; generateIds drops it.
      if (produced.at(-1) === eos) produced.pop();
      const [mine] = await runner.generateIds([g.promptIds], { maxNewTokens: 10 });
      expect(produced).toEqual(mine);
    }
  });

  it("transformers.js' tokenizer loads from the export and encodes as ours does", () => {
    const gens = json.generations.slice(0, GENERATIONS);
    for (const [i, g] of gens.entries()) {
      expect(tjs.results[at.tokenize + i]?.ids).toEqual(runner.tokenizer.encode(g.prompt));
    }
  });
});

describe("exportTransformersJs: dtypes and bad inputs", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    t = await tempDir("tjs-dtypes");
  });
  afterAll(() => t?.cleanup());

  it("an fp16 build is model_fp16.onnx + model_fp16.onnx_data with an fp16 KV cache, and transformers.js' logits match the runner's", async () => {
    const { onnxPath } = await buildOnnxModel({
      modelDir,
      outDir: join(t.dir, "b16"),
      dtype: "fp16",
    });
    const out = join(t.dir, "e16");
    const r = await exportTransformersJs({ onnxPath, modelDir, outDir: out });
    expect(r.dtype).toBe("fp16");
    expect(r.onnxPath).toBe(join(out, "onnx", "model_fp16.onnx"));
    expect(r.dataPath).toBe(join(out, "onnx", "model_fp16.onnx_data"));
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config["transformers.js_config"]).toEqual({
      dtype: "fp16",
      use_external_data_format: true,
      kv_cache_dtype: { fp16: "float16" },
    });
    const runner = await MistralRunner.create({ onnxPath, modelDir, threads: 1 });
    try {
      const row = (await readReferenceJson("mistral")).generations[0]?.promptIds as number[];
      const tjs = await runTransformersJs(out, [{ forward: row }, { forward: [5], past: 0 }]);
      const V = runner.config.vocabSize;
      // The same fp16 graph on two onnxruntime builds: equal up to fp16 rounding.
      const mine = await runner.logits([row]);
      const first = tjs.results[0]?.logits as Float32Array;
      expect(maxDiffValid(first, mine, [row.map(() => 1)], V)).toBeLessThanOrEqual(2e-2);
      const next = tjs.results[1]?.logits as Float32Array;
      const full = await runner.logits([[...row, 5]], { lastOnly: true });
      expect(maxDiffValid(next, full, [[1]], V)).toBeLessThanOrEqual(2e-2);
    } finally {
      await runner.close();
    }
  });

  it("an int4 build is model_q4.onnx (q4f16 with fp16 weights) and still loads in the runner", async () => {
    for (const [dtype, name] of [
      ["fp32", "model_q4"],
      ["fp16", "model_q4f16"],
    ] as const) {
      const { onnxPath } = await buildOnnxModel({
        modelDir,
        outDir: join(t.dir, `q4-${dtype}`),
        dtype,
        weightQuant: "int4",
        quantBlockSize: 16,
      });
      const out = join(t.dir, `eq4-${dtype}`);
      const r = await exportTransformersJs({ onnxPath, modelDir, outDir: out });
      expect(r.onnxPath).toBe(join(out, "onnx", `${name}.onnx`));
      expect(r.dataPath).toBe(join(out, "onnx", `${name}.onnx_data`));
      const a = await MistralRunner.create({ onnxPath, modelDir, threads: 1 });
      const b = await MistralRunner.create({ onnxPath: r.onnxPath, modelDir, threads: 1 });
      try {
        expect(await b.logits([[1, 20, 30]], { lastOnly: true })).toEqual(
          await a.logits([[1, 20, 30]], { lastOnly: true }),
        );
      } finally {
        await a.close();
        await b.close();
      }
    }
  });

  it("refuses a missing model, a graph buildOnnxModel did not write, and a missing weights file, naming the file", async () => {
    const missing = join(t.dir, "nope", "model.onnx");
    const e1 = await exportTransformersJs({
      onnxPath: missing,
      modelDir,
      outDir: join(t.dir, "x1"),
    }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(MistralOnnxError);
    expect((e1 as MistralOnnxError).file).toBe(missing);

    const foreign = join(t.dir, "foreign.onnx");
    await writeFile(
      foreign,
      onnx.ModelProto.encode({ irVersion: 8, graph: { name: "g", input: [] } }).finish(),
    );
    const e2 = await exportTransformersJs({
      onnxPath: foreign,
      modelDir,
      outDir: join(t.dir, "x2"),
    }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(MistralOnnxError);
    expect((e2 as Error).message).toMatch(/foreign\.onnx.*model\.embed_tokens\.weight/);

    const { onnxPath } = await buildOnnxModel({ modelDir, outDir: join(t.dir, "b3") });
    await rm(join(dirname(onnxPath), ONNX_DATA_FILE));
    const e3 = await exportTransformersJs({
      onnxPath,
      modelDir,
      outDir: join(t.dir, "x3"),
    }).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(MistralOnnxError);
    expect((e3 as MistralOnnxError).file).toBe(join(dirname(onnxPath), ONNX_DATA_FILE));
  });
});

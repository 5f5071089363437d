import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildGenerationGraph,
  buildOnnxModel,
  type BuildOnnxModelOptions,
  DELTA_PROJECTIONS,
  type DeltaSource,
  GENERATION_ONNX_FILE,
  generationGraphPath,
  MistralRunner,
  ONNX_DATA_FILE,
  ONNX_FILE,
  type WeightDelta,
} from "../src/index.js";
import { type GenerateContext, generateIds } from "../src/generate.js";
import { sessionGreedyLoop } from "../src/loop-generate.js";
import { type GraphProto, onnx, type TensorProto } from "../src/onnx/proto.js";
import { FIXTURES, MODELS, type ModelKind, readReferenceJson, tempDir } from "./helpers.js";

/**
 * The in-graph greedy loop (generate.onnx) against the host loop (generateIds over model.onnx,
 * itself checked token for token against transformers in parity.test.ts): the same tokens for
 * left-padded batches of different prompt lengths, EOS early stop, maxNewTokens cuts and stop
 * strings, in fp32 and fp16, with LoRA side branches and routed branches inside the loop body.
 */

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}
const randoms = (n: number, r: () => number, scale: number) =>
  Float32Array.from({ length: n }, () => r() * scale);

interface Shape {
  hidden: number;
  inter: number;
  q: number;
  kv: number;
}
const SHAPE: Record<ModelKind, Shape> = {
  mistral: { hidden: 64, inter: 128, q: 64, kv: 32 },
  llama: { hidden: 64, inter: 128, q: 64, kv: 32 },
};

/** [out, in] of each projection. */
function dims(suffix: string, s: Shape): [number, number] {
  if (suffix.endsWith("q_proj")) return [s.q, s.hidden];
  if (suffix.endsWith("k_proj") || suffix.endsWith("v_proj")) return [s.kv, s.hidden];
  if (suffix.endsWith("o_proj")) return [s.hidden, s.q];
  if (suffix.endsWith("down_proj")) return [s.hidden, s.inter];
  return [s.inter, s.hidden];
}

/** A delta for every projection of both layers: low-rank (side-branch) or routed (lift routing). */
function syntheticDeltas(kind: "lowrank" | "routed", s: Shape): DeltaSource {
  return {
    get: async (module) => {
      const suffix = DELTA_PROJECTIONS.find((p) => module.endsWith(p)) as string;
      const [out, inF] = dims(suffix, s);
      const r = rng(module.length * 131 + (kind === "routed" ? 7 : 3));
      const rank = 2;
      if (kind === "lowrank") {
        return { kind, A: randoms(rank * inF, r, 0.5), B: randoms(out * rank, r, 0.5), rank };
      }
      const expert = () => ({
        A: randoms(rank * inF, r, 0.3),
        B: randoms(out * rank, r, 0.8),
        rank,
      });
      const d: WeightDelta = {
        kind: "routed",
        experts: [expert(), null, expert()],
        router: { score: "lift", gate: "softmax_top_k", topK: 1, temperature: 1 },
      };
      return d;
    },
  };
}

interface Build {
  onnxPath: string;
  modelDir: string;
  host: MistralRunner;
  loop: MistralRunner;
  cleanup: () => Promise<void>;
}

async function build(kind: ModelKind, extra: Partial<BuildOnnxModelOptions> = {}): Promise<Build> {
  const t = await tempDir(`loop-${kind}`);
  const modelDir = join(FIXTURES, kind);
  const { onnxPath } = await buildOnnxModel({ modelDir, outDir: t.dir, ...extra });
  const host = await MistralRunner.create({ onnxPath, modelDir, threads: 1 });
  const loop = await MistralRunner.create({
    onnxPath,
    modelDir,
    threads: 1,
    generationGraph: "loop",
  });
  return {
    onnxPath,
    modelDir,
    host,
    loop,
    cleanup: async () => {
      await host.close();
      await loop.close();
      await t.cleanup();
    },
  };
}

/** Prompts of different lengths, so every batch is left-padded. */
const PROMPTS = [
  "Hello",
  "The quick brown fox jumps over the lazy dog",
  "a b c",
  "Once upon a time, in a land far away, there lived",
  "1 2 3 4 5",
];

function encodeAll(r: MistralRunner): number[][] {
  return PROMPTS.map((p) => r.tokenizer.encode(p));
}

/** The host loop and the in-graph loop with any EOS ids, over one build's two sessions. */
async function bothWithEos(b: Build, rows: number[][], eos: number[], maxNew: number) {
  const genSession = await ort.InferenceSession.create(generationGraphPath(b.onnxPath), {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
  });
  try {
    let steps = -1;
    const loopFn = sessionGreedyLoop(genSession);
    const base: GenerateContext = {
      forward: (s) => b.host.forward(s),
      tokenizer: b.host.tokenizer,
      vocabSize: b.host.config.vocabSize,
      eosTokenIds: eos,
    };
    const host = await generateIds(base, rows, { maxNewTokens: maxNew });
    const loop = await generateIds(
      {
        ...base,
        greedyLoop: async (...args) => {
          const out = await loopFn(...args);
          steps = out[0]?.length ?? 0;
          return out;
        },
      },
      rows,
      { maxNewTokens: maxNew },
    );
    return { host, loop, steps };
  } finally {
    await genSession.release();
  }
}

const VARIANTS: Array<{ name: string; kind: ModelKind; extra: Partial<BuildOnnxModelOptions> }> = [
  ...MODELS.flatMap((kind) =>
    (["fp32", "fp16"] as const).map((dtype) => ({
      name: `${kind} ${dtype}`,
      kind,
      extra: { dtype },
    })),
  ),
  {
    name: "mistral fp32 LoRA side-branch",
    kind: "mistral",
    extra: { deltas: syntheticDeltas("lowrank", SHAPE.mistral), deltaMode: "side-branch" },
  },
  {
    name: "mistral fp16 LoRA side-branch",
    kind: "mistral",
    extra: {
      dtype: "fp16",
      deltas: syntheticDeltas("lowrank", SHAPE.mistral),
      deltaMode: "side-branch",
    },
  },
  {
    name: "mistral fp32 routed",
    kind: "mistral",
    extra: { deltas: syntheticDeltas("routed", SHAPE.mistral) },
  },
  {
    name: "llama fp16 routed",
    kind: "llama",
    extra: { dtype: "fp16", deltas: syntheticDeltas("routed", SHAPE.llama) },
  },
];

describe.each(VARIANTS)("$name: in-graph greedy loop = host loop", ({ kind, extra }) => {
  let b: Build;
  beforeAll(async () => {
    b = await build(kind, extra);
  });
  afterAll(() => b.cleanup());

  it("same tokens for a left-padded batch at several maxNewTokens (1, 7, 24)", async () => {
    const rows = encodeAll(b.host);
    for (const maxNewTokens of [1, 7, 24]) {
      const host = await b.host.generateIds(rows, { maxNewTokens });
      expect(host.some((r) => r.length > 0)).toBe(true);
      expect(await b.loop.generateIds(rows, { maxNewTokens })).toEqual(host);
    }
  });

  // Defined for delta builds only, so base builds show no skipped test.
  if (extra.deltas) {
    it("the deltas change the tokens (their branches run in the loop body)", async () => {
      const base = await build(kind, extra.dtype ? { dtype: extra.dtype } : {});
      try {
        const rows = encodeAll(b.host);
        expect(await b.loop.generateIds(rows, { maxNewTokens: 8 })).not.toEqual(
          await base.loop.generateIds(rows, { maxNewTokens: 8 }),
        );
      } finally {
        await base.cleanup();
      }
    });
  }

  it("EOS stops rows early, and the loop ends once every row is done", async () => {
    const rows = encodeAll(b.host);
    const first = await b.host.generateIds(rows, { maxNewTokens: 12 });
    // An EOS id that some rows produce mid-way: rows are cut there, others run on.
    const eosMid = first[1]?.[3] as number;
    const mid = await bothWithEos(b, rows, [eosMid], 12);
    expect(mid.loop).toEqual(mid.host);
    expect(mid.host[1]).toHaveLength(3);
    // Every row's second token as an EOS id: all rows are done after ≤ 2 steps, and the
    // graph's Loop condition stops there instead of running all 12 steps.
    const eosAll = [...new Set(first.map((r) => r[1] as number))];
    const all = await bothWithEos(b, rows, eosAll, 12);
    expect(all.loop).toEqual(all.host);
    expect(all.host.every((r) => r.length <= 1)).toBe(true);
    expect(all.steps).toBeLessThanOrEqual(2);
  });

  it("generate() with stop strings and batches of different prompt lengths gives the same texts", async () => {
    const free = await b.host.generate(PROMPTS, { maxNewTokens: 16, batchSize: 2 });
    // Stop strings that occur in the outputs (two characters from the middle of each text).
    const stops = free.flatMap((t) => (t.length >= 6 ? [t.slice(3, 5)] : []));
    expect(stops.length).toBeGreaterThan(0);
    for (const batchSize of [1, 2, 5]) {
      const host = await b.host.generate(PROMPTS, { maxNewTokens: 16, stop: stops, batchSize });
      expect(await b.loop.generate(PROMPTS, { maxNewTokens: 16, stop: stops, batchSize })).toEqual(
        host,
      );
    }
    expect(await b.loop.generate(PROMPTS, { maxNewTokens: 16, batchSize: 2 })).toEqual(free);
  });
});

describe.each(MODELS)("%s: in-graph greedy loop = transformers", (kind) => {
  let b: Build;
  beforeAll(async () => {
    b = await build(kind);
  });
  afterAll(() => b.cleanup());

  it("token-identical to transformers' greedy generation on the 20 reference prompts", async () => {
    const json = await readReferenceJson(kind);
    const eos = b.loop.tokenizer.eosId;
    const expected = json.generations.map((g) =>
      g.newIds.at(-1) === eos ? g.newIds.slice(0, -1) : g.newIds,
    );
    const got = await b.loop.generateIds(
      json.generations.map((g) => g.promptIds),
      { maxNewTokens: 10 },
    );
    expect(got).toEqual(expected);
    expect(
      await b.loop.generate(
        json.generations.map((g) => g.prompt),
        { maxNewTokens: 10, batchSize: 3 },
      ),
    ).toEqual(json.generations.map((g) => g.text));
  });
});

describe("generate.onnx shares model.onnx.data", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  let onnxPath: string;
  beforeAll(async () => {
    t = await tempDir("loop-files");
    ({ onnxPath } = await buildOnnxModel({ modelDir: join(FIXTURES, "mistral"), outDir: t.dir }));
  });
  afterAll(() => t.cleanup());

  const externals = async (file: string) => {
    const m = onnx.ModelProto.decode(await readFile(file));
    // Initializers of the graph and of every subgraph (the Loop body holds the weights).
    const all = (g: GraphProto | null | undefined): TensorProto[] => [
      ...(g?.initializer ?? []),
      ...(g?.node ?? []).flatMap((n) => (n.attribute ?? []).flatMap((a) => all(a.g))),
    ];
    return all(m.graph)
      .filter((i) => (i.externalData ?? []).length > 0)
      .map((i) => ({
        name: i.name,
        ...Object.fromEntries((i.externalData ?? []).map((e) => [e.key, e.value])),
      }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  };

  it("every external weight has the same name, file, offset and length; no weight is copied", async () => {
    const gen = join(dirname(onnxPath), GENERATION_ONNX_FILE);
    const a = await externals(onnxPath);
    const g = await externals(gen);
    expect(a.length).toBeGreaterThan(10);
    expect(g).toEqual(a);
    expect(g.every((x) => (x as { location?: string }).location === ONNX_DATA_FILE)).toBe(true);
    const data = (await stat(join(t.dir, ONNX_DATA_FILE))).size;
    const genSize = (await stat(gen)).size;
    const modelSize = (await stat(join(t.dir, ONNX_FILE))).size;
    // The generation graph is the decoder's graph plus a few nodes, not another weight copy.
    expect(genSize).toBeLessThan(modelSize * 1.5 + 8192);
    expect(genSize).toBeLessThan(data / 4);
  });

  it("buildGenerationGraph rebuilds the same generate.onnx from model.onnx alone", async () => {
    const gen = generationGraphPath(onnxPath);
    const before = await readFile(gen);
    await buildGenerationGraph(onnxPath);
    expect(Buffer.compare(await readFile(gen), before)).toBe(0);
  });
});

describe("generationGraph option errors", () => {
  it('"loop" without generate.onnx names the missing file', async () => {
    const t = await tempDir("loop-missing");
    try {
      const modelDir = join(FIXTURES, "mistral");
      const { onnxPath } = await buildOnnxModel({ modelDir, outDir: t.dir });
      const { rm } = await import("node:fs/promises");
      await rm(generationGraphPath(onnxPath));
      await expect(
        MistralRunner.create({ onnxPath, modelDir, generationGraph: "loop" }),
      ).rejects.toThrow(/generate\.onnx.*buildGenerationGraph/u);
      await expect(
        MistralRunner.create({
          onnxPath,
          modelDir,
          generationGraph: "graph" as unknown as "loop",
        }),
      ).rejects.toThrow(/generationGraph must be "none" or "loop", got "graph"/u);
    } finally {
      await t.cleanup();
    }
  });

  it("buildGenerationGraph on a file that is not a decoder names it", async () => {
    const t = await tempDir("loop-bad");
    try {
      const bad = join(t.dir, "model.onnx");
      const { writeFile } = await import("node:fs/promises");
      await writeFile(bad, new Uint8Array([1, 2, 3]));
      await expect(buildGenerationGraph(bad)).rejects.toThrow(
        /model\.onnx: cannot build the generation graph/u,
      );
    } finally {
      await t.cleanup();
    }
  });
});

describe("one session at a time (issue 10: 56 GB with both at 7B)", () => {
  it("generation releases the scoring session and scoring reopens it, with the same results as keeping both", async () => {
    const b = await build("mistral");
    const both = await MistralRunner.create({
      onnxPath: b.onnxPath,
      modelDir: b.modelDir,
      threads: 1,
      generationGraph: "loop",
      keepBothSessions: true,
    });
    try {
      const held = (r: MistralRunner) =>
        r as unknown as { scoringSession: { isOpen: boolean }; genSession: { isOpen: boolean } };
      const rows = encodeAll(b.loop);
      const steps = async (r: MistralRunner) => [
        await r.scoreContinuations(PROMPTS[1] as string, [" cat", " dog and a fox"]),
        await r.generateIds(rows, { maxNewTokens: 6 }),
        !held(r).scoringSession.isOpen,
        await r.scoreContinuations(PROMPTS[3] as string, [" a king", " nobody"]),
        !held(r).genSession.isOpen,
        await r.generateIds(rows.slice(0, 2), { maxNewTokens: 4 }),
      ];
      const one = await steps(b.loop);
      const two = await steps(both);
      // Released while the other ran (one at a time); both kept with keepBothSessions.
      expect([one[2], one[4]]).toEqual([true, true]);
      expect([two[2], two[4]]).toEqual([false, false]);
      expect(one[0]).toEqual(two[0]);
      expect(one[1]).toEqual(two[1]);
      expect(one[3]).toEqual(two[3]);
      expect(one[5]).toEqual(two[5]);
    } finally {
      await both.close();
      await b.cleanup();
    }
  });
});

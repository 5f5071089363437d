import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { getStrategy, type ModuleMergeInput, type RoutedMergeResult } from "@merge/strategies";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildOnnxModel,
  checkDelta,
  DELTA_PROJECTIONS,
  type DeltaSource,
  FUSED_OPS,
  MistralOnnxError,
  type MistralRunner,
  type RouterSpec,
  type WeightDelta,
} from "../src/index.js";
import { buildAndOpen, FIXTURES, logitsThroughCache, maxDiffValid, tempDir } from "./helpers.js";

/**
 * Parity of the routed side branch (SMILE, Arrow, Chance-Lift) with an independent PyTorch
 * implementation: tools/fixtures/mistral-onnx/make_routed_fixtures.py writes three random LoRA
 * experts (ranks 2, 3, 4; one rsLoRA; one without o_proj and down_proj) and transformers' logits
 * with every projection routed. Here the real strategies of @merge/strategies turn the experts'
 * raw factors into routed deltas, and the ONNX model must reproduce those logits.
 */

/** One expert's LoRA factors for a module (@merge/lora's LoraModule). */
type LoraModule = NonNullable<ModuleMergeInput["experts"][number]>;

const DIR = join(FIXTURES, "mistral", "routed");
const V = 986;
const TOL = 1e-4;
const MODULES = [0, 1].flatMap((l) => DELTA_PROJECTIONS.map((s) => `model.layers.${l}.${s}`));

const ROUTERS = [
  { strategy: "smile", key: "smile" },
  { strategy: "arrow", key: "arrow" },
  { strategy: "lift_routing", key: "lift" },
] as const;
type RouterKey = (typeof ROUTERS)[number]["key"];

interface ExpertsJson {
  experts: Array<{
    rank: number;
    alpha: number;
    useRslora: boolean;
    scale: number;
    modules: string[];
  }>;
  routers: Record<RouterKey, RouterSpec>;
  texts: string[];
}

interface RoutedReference {
  batch: number;
  seq: number;
  ids: number[][]; // batch × seq, pads included
  rows: number[][]; // unpadded token ids
  mask: number[][];
  logits: Record<RouterKey, Float32Array>;
}

async function readReference(): Promise<RoutedReference> {
  const ck = await SafetensorsCheckpoint.open(join(DIR, "reference.safetensors"));
  try {
    const [batch, seq] = ck.info("input_ids").shape as [number, number];
    const ids = new BigInt64Array((await ck.readBytes("input_ids")).slice().buffer);
    const m = new BigInt64Array((await ck.readBytes("attention_mask")).slice().buffer);
    const all: number[][] = [];
    const rows: number[][] = [];
    const mask: number[][] = [];
    for (let b = 0; b < batch; b++) {
      const a: number[] = [];
      const row: number[] = [];
      const mrow: number[] = [];
      for (let s = 0; s < seq; s++) {
        const id = Number(ids[b * seq + s]);
        a.push(id);
        mrow.push(Number(m[b * seq + s]));
        if (m[b * seq + s] === 1n) row.push(id);
      }
      all.push(a);
      rows.push(row);
      mask.push(mrow);
    }
    return {
      batch,
      seq,
      ids: all,
      rows,
      mask,
      logits: {
        smile: await ck.readF32("logits_smile"),
        arrow: await ck.readF32("logits_arrow"),
        lift: await ck.readF32("logits_lift"),
      },
    };
  } finally {
    await ck.close();
  }
}

/** Per module, one slot per expert: its raw LoRA factors (B unscaled) or null. */
async function readExperts(info: ExpertsJson): Promise<Map<string, Array<LoraModule | null>>> {
  const ck = await SafetensorsCheckpoint.open(join(DIR, "experts.safetensors"));
  try {
    const out = new Map<string, Array<LoraModule | null>>();
    for (const module of MODULES) {
      const slots: Array<LoraModule | null> = [];
      for (const [i, e] of info.experts.entries()) {
        const a = `e${i}.${module}.lora_A`;
        if (!ck.has(a)) {
          expect(e.modules).not.toContain(module);
          slots.push(null);
          continue;
        }
        const [rank, inFeatures] = ck.info(a).shape as [number, number];
        const [outFeatures] = ck.info(`e${i}.${module}.lora_B`).shape as [number, number];
        expect(rank).toBe(e.rank);
        slots.push({
          A: await ck.readF32(a),
          B: await ck.readF32(`e${i}.${module}.lora_B`),
          rank,
          inFeatures,
          outFeatures,
          scale: e.scale,
        });
      }
      out.set(module, slots);
    }
    return out;
  } finally {
    await ck.close();
  }
}

/** The routed delta of every module, as the named strategy builds it. */
function routedDeltas(
  strategy: string,
  experts: Map<string, Array<LoraModule | null>>,
): Map<string, RoutedMergeResult> {
  const out = new Map<string, RoutedMergeResult>();
  for (const [module, slots] of experts) {
    const some = slots.find((s) => s !== null) as LoraModule;
    const r = getStrategy(strategy).merge(
      {
        module,
        outFeatures: some.outFeatures,
        inFeatures: some.inFeatures,
        experts: slots,
      },
      {},
      { seed: 0 },
    );
    if (r.kind !== "routed") throw new Error(`${strategy} returned a ${r.kind} result`);
    out.set(module, r);
  }
  return out;
}

function source(results: Map<string, RoutedMergeResult>): DeltaSource {
  return {
    get: async (module) => {
      const r = results.get(module);
      return r && { kind: "routed", experts: r.experts, router: r.router };
    },
  };
}

/** Prefill all but the last `tail` positions, then one token at a time; logits batch × seq × V. */
function throughCache(runner: MistralRunner, ref: RoutedReference, tail: number) {
  const pad = runner.tokenizer.padId;
  const ids = ref.ids.map((row, b) => row.map((id, s) => (ref.mask[b]?.[s] ? id : pad)));
  return logitsThroughCache(runner, ids, ref.mask, tail);
}

let info: ExpertsJson;
let ref: RoutedReference;
let experts: Map<string, Array<LoraModule | null>>;

beforeAll(async () => {
  info = JSON.parse(await readFile(join(DIR, "experts.json"), "utf8")) as ExpertsJson;
  ref = await readReference();
  experts = await readExperts(info);
});

describe("routed fixtures", () => {
  it("three experts of different ranks, one without o_proj/down_proj, over a left-padded batch", () => {
    expect(info.experts.map((e) => e.rank)).toEqual([2, 3, 4]);
    expect(info.experts.some((e) => e.useRslora)).toBe(true);
    expect(experts.size).toBe(14);
    const o = experts.get("model.layers.0.self_attn.o_proj") as Array<LoraModule | null>;
    const q = experts.get("model.layers.0.self_attn.q_proj") as Array<LoraModule | null>;
    expect(o.filter((e) => e === null)).toHaveLength(1);
    expect(q.every((e) => e !== null)).toBe(true);
    expect(ref.mask.some((m) => m[0] === 0)).toBe(true);
  });

  it("the three routers give clearly different logits", () => {
    for (const [a, b] of [
      ["smile", "arrow"],
      ["smile", "lift"],
      ["arrow", "lift"],
    ] as const)
      expect(maxDiffValid(ref.logits[a], ref.logits[b], ref.mask, V)).toBeGreaterThan(0.5);
  });
});

// Each router on the standard graph and on the contrib-op graph (fusedOps).
const ROUTER_CASES = ROUTERS.flatMap((r) => FUSED_OPS.map((fusedOps) => ({ ...r, fusedOps })));

describe.each(ROUTER_CASES)(
  "$strategy, fusedOps $fusedOps: routed parity with PyTorch",
  ({ strategy, key, fusedOps }) => {
    let results: Map<string, RoutedMergeResult>;
    let fp32: Awaited<ReturnType<typeof buildAndOpen>>;
    let full: Float32Array;

    beforeAll(async () => {
      results = routedDeltas(strategy, experts);
      fp32 = await buildAndOpen("mistral", { deltas: source(results), fusedOps });
      full = await fp32.runner.logits(ref.rows);
    });
    afterAll(() => fp32?.cleanup());

    it("the strategy's router and experts are the fixture's", () => {
      for (const [module, r] of results) {
        expect(r.router).toEqual(info.routers[key]);
        const slots = experts.get(module) as Array<LoraModule | null>;
        expect(r.experts.map((e) => e?.rank ?? null)).toEqual(slots.map((e) => e?.rank ?? null));
      }
    });

    it("fp32 logits of a left-padded batch match PyTorch", () => {
      expect(full.length).toBe(ref.batch * ref.seq * V);
      const d = maxDiffValid(full, ref.logits[key], ref.mask, V);
      console.log(`${strategy} fp32 vs PyTorch: max |Δlogit| ${d.toExponential(3)}`);
      expect(d).toBeLessThanOrEqual(TOL);
    });

    it("through the KV cache (padded prefill, then one token at a time) equals the full pass", async () => {
      const got = await throughCache(fp32.runner, ref, 4);
      const d = maxDiffValid(got, full, ref.mask, V);
      console.log(`${strategy} KV cache vs full pass: max |Δlogit| ${d.toExponential(3)}`);
      expect(d).toBeLessThanOrEqual(TOL);
      expect(maxDiffValid(got, ref.logits[key], ref.mask, V)).toBeLessThanOrEqual(TOL);
    });

    it("an fp16 build runs and stays close to fp32", async () => {
      const fp16 = await buildAndOpen("mistral", {
        deltas: source(results),
        dtype: "fp16",
        fusedOps,
      });
      try {
        const got = await fp16.runner.logits(ref.rows);
        const d = maxDiffValid(got, full, ref.mask, V);
        console.log(`${strategy} fp16 vs fp32: max |Δlogit| ${d.toExponential(3)}`);
        expect(d).toBeGreaterThan(0); // it really ran in half precision
        expect(d).toBeLessThanOrEqual(5e-2);
      } finally {
        await fp16.cleanup();
      }
    });
  },
);

describe("routed delta validation", () => {
  const module = "model.layers.1.mlp.gate_proj";
  const good = (): Extract<WeightDelta, { kind: "routed" }> => {
    const r = routedDeltas("lift_routing", experts).get(module) as RoutedMergeResult;
    return { kind: "routed", experts: r.experts, router: r.router };
  };

  it("checkDelta accepts the strategy's delta and rejects a bad shape, naming the module", () => {
    const d = good();
    expect(() => checkDelta(module, d, 128, 64)).not.toThrow();
    const e1 = d.experts[1] as NonNullable<(typeof d.experts)[number]>;
    const bad: WeightDelta = {
      ...d,
      experts: [d.experts[0] ?? null, { ...e1, A: e1.A.subarray(1) }, d.experts[2] ?? null],
    };
    expect(() => checkDelta(module, bad, 128, 64)).toThrow(MistralOnnxError);
    expect(() => checkDelta(module, bad, 128, 64)).toThrow(
      /model\.layers\.1\.mlp\.gate_proj.*expert 1: A has/,
    );
    // Right sizes for another weight are wrong here (the down projection is 64 × 128).
    expect(() => checkDelta(module, d, 64, 128)).toThrow(/model\.layers\.1\.mlp\.gate_proj/);
  });

  it("buildOnnxModel rejects a routed delta with a bad shape, naming the module", async () => {
    const d = good();
    const e0 = d.experts[0] as NonNullable<(typeof d.experts)[number]>;
    const bad: WeightDelta = {
      ...d,
      experts: [{ ...e0, B: new Float32Array(e0.B.length + 128) }, ...d.experts.slice(1)],
    };
    const t = await tempDir("routed-bad");
    try {
      await expect(
        buildOnnxModel({
          modelDir: join(FIXTURES, "mistral"),
          outDir: t.dir,
          deltas: { get: async (m) => (m === module ? bad : undefined) },
        }),
      ).rejects.toThrow(/model\.layers\.1\.mlp\.gate_proj.*expert 0: B has/);
    } finally {
      await t.cleanup();
    }
  });
});

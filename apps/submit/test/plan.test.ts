import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ONNX_BUILD_FORMAT } from "@merge/mistral-onnx";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, type SubmitConfig } from "../src/config.js";
import { ConfigError, SubmitError } from "../src/errors.js";
import { runSubmit } from "../src/pipeline.js";
import {
  buildCacheKey,
  buildKeyParts,
  codeVersions,
  defaultCacheDir,
  KEYED_PACKAGES,
  parseHyperFlags,
  planRun,
} from "../src/plan.js";
import { makeTinySetup, REPO } from "./helpers.js";

function withStrategy(method: string, hyperparameters: Record<string, unknown>): SubmitConfig {
  return { ...DEFAULT_CONFIG, strategy: { method, hyperparameters } };
}

const BAD_HYPER: Array<[string, Record<string, unknown>, RegExp]> = [
  ["ties", { majoritySign: "bogus" }, /"majoritySign" must be one of total, frequency/],
  ["ties", { density: 5 }, /"density" must be in \(0, 1\], got 5/],
  ["knots", { method: "nope" }, /"method" must be one of ties, dare_ties, linear/],
];

describe("planRun", () => {
  const flags = { root: REPO, configFile: "c.yaml" };

  for (const [method, hyper, message] of BAD_HYPER) {
    it(`rejects ${method} ${JSON.stringify(hyper)}, naming the file and the field`, () => {
      const plan = () => planRun(withStrategy(method, hyper), flags);
      expect(plan).toThrow(ConfigError);
      expect(plan).toThrow(/^c\.yaml: strategy\.hyperparameters: strategy "\w+": hyperparameter/);
      expect(plan).toThrow(message);
    });
  }

  it("resolves the method's defaults and applies the flags", () => {
    const p = planRun(withStrategy("ties", { density: 0.5 }), {
      ...flags,
      out: "output/x/test.csv",
      budgetSeconds: 10,
    });
    expect(p.strategy.name).toBe("ties");
    expect(p.hyper).toEqual({ density: 0.5, lambda: 1, majoritySign: "total" });
    expect(p.config.budgetSeconds).toBe(10);
    expect(p.outDir).toBe(join(REPO, "output/x"));
    // The build cache is per user, not under --out: a new --out reuses earlier builds.
    expect(p.cacheRoot).toBe(defaultCacheDir());
    expect(p.keySettings).toMatchObject({ onnxFormat: ONNX_BUILD_FORMAT, method: "ties" });
    // Another method's hyperparameters do not carry over.
    expect(
      planRun(withStrategy("ties", { density: 0.5 }), { ...flags, method: "osm" }).hyper,
    ).toEqual({ gamma: 1, energy: 1, rank: 0 });
  });

  it("refuses flag combinations and a non-low-rank method for --save-adapter", () => {
    const c = withStrategy("linear", {});
    expect(() => planRun(c, { ...flags, mergeOnly: true })).toThrow(/--merge-only needs/);
    expect(() => planRun(c, { ...flags, saveAdapter: "x" })).toThrow(/used with --merge-only/);
    expect(() => planRun(c, { ...flags, budgetSeconds: 0 })).toThrow(SubmitError);
    const save = { ...flags, mergeOnly: true, saveAdapter: "x" };
    expect(planRun(c, save).outputs).toEqual([]);
    expect(() => planRun(withStrategy("lift_routing", {}), save)).toThrow(/routed mixture/);
    expect(() => planRun(withStrategy("ties", {}), save)).toThrow(/dense deltas/);
  });

  it("--save-onnx takes every kind of result, alone or with --merge-only, but not with --save-adapter", () => {
    const onnx = { ...flags, saveOnnx: "out/onnx" };
    for (const method of ["lift_routing", "ties", "linear"]) {
      const p = planRun(withStrategy(method, {}), { ...onnx, mergeOnly: true });
      expect(p.saveOnnx).toBe(join(REPO, "out/onnx"));
      expect(p.outputs).toEqual([]);
    }
    expect(planRun(withStrategy("lift_routing", {}), onnx).outputs.length).toBeGreaterThan(0);
    expect(planRun(withStrategy("linear", {}), flags).saveOnnx).toBeNull();
    expect(() =>
      planRun(withStrategy("linear", {}), { ...onnx, mergeOnly: true, saveAdapter: "x" }),
    ).toThrow(/one kind of export per run/);
    expect(() =>
      planRun(withStrategy("linear", {}), { ...onnx, mergeOnly: true, saveModel: "m" }),
    ).toThrow(/--save-model and --save-onnx: one kind of export per run/);
  });

  it("checks --save-model, --adapter-rank and --shard-size before anything is read", () => {
    const lin = withStrategy("linear", {});
    const ties = withStrategy("ties", {});
    const routed = withStrategy("lift_routing", {});
    const model = { ...flags, mergeOnly: true, saveModel: "m" };
    // A dense method saves a checkpoint; its shard size defaults to transformers' 5 GB.
    expect(planRun(ties, model).exports).toEqual({
      saveOnnx: null,
      saveAdapter: null,
      saveModel: join(REPO, "m"),
      maxShardBytes: 5e9,
      adapterRank: null,
    });
    expect(planRun(lin, { ...model, shardSize: "2GiB" }).exports.maxShardBytes).toBe(2 ** 31);
    expect(planRun(lin, { ...model, shardSize: "500MB" }).exports.maxShardBytes).toBe(5e8);
    expect(planRun(lin, { ...model, shardSize: "1234" }).exports.maxShardBytes).toBe(1234);
    for (const bad of ["", "5 parsecs", "0", "-1GB", "GB"]) {
      expect(() => planRun(lin, { ...model, shardSize: bad }), bad).toThrow(/--shard-size/);
    }
    expect(() => planRun(lin, { ...flags, saveModel: "m" })).toThrow(/used with --merge-only/);
    expect(() =>
      planRun(lin, { ...flags, mergeOnly: true, shardSize: "1GB", saveAdapter: "a" }),
    ).toThrow(/--shard-size sets the shards of --save-model/);
    // A routed mixture has no static export: the message names the ONNX export instead.
    for (const f of [model, { ...flags, mergeOnly: true, saveAdapter: "a" }]) {
      expect(() => planRun(routed, f)).toThrow(
        /routed mixture.*ONNX model only \(--save-onnx DIR/s,
      );
    }
    // A dense adapter needs an explicit truncation rank, and the refusal says how to get one.
    const adapter = { ...flags, mergeOnly: true, saveAdapter: "a" };
    expect(() => planRun(ties, adapter)).toThrow(/--adapter-rank N .*--save-model DIR/s);
    expect(planRun(ties, { ...adapter, adapterRank: 4 }).exports.adapterRank).toBe(4);
    expect(() => planRun(lin, { ...adapter, adapterRank: 4 })).toThrow(
      /low-rank results, which --save-adapter saves exactly/,
    );
    expect(() => planRun(ties, { ...model, adapterRank: 4 })).toThrow(
      /--adapter-rank sets the rank of --save-adapter/,
    );
    expect(() => planRun(ties, { ...adapter, adapterRank: 1.5 })).toThrow(/positive integer/);
    // Both exports at once, but not into overlapping folders.
    expect(planRun(lin, { ...model, saveAdapter: "a" }).exports.saveAdapter).toBe(join(REPO, "a"));
    expect(() => planRun(lin, { ...model, saveAdapter: "m/adapter" })).toThrow(/overlap/);
    expect(() => planRun(lin, { ...flags, mergeOnly: true })).toThrow(
      /--merge-only needs --save-adapter DIR, --save-model DIR or --save-onnx DIR/,
    );
  });
});

describe("build cache key", () => {
  const settings = planRun(withStrategy("osm", {}), { root: REPO, configFile: null }).keySettings;

  it("holds the versions of the merge, build, tensor and LoRA packages", async () => {
    const versions = codeVersions();
    expect(Object.keys(versions)).toEqual([...KEYED_PACKAGES]);
    for (const [name, dir] of [
      ["@merge/strategies", "strategies"],
      ["@merge/mistral-onnx", "mistral-onnx"],
      ["@merge/tensor-io", "tensor-io"],
      ["@merge/lora", "lora"],
    ] as const) {
      const pkg = JSON.parse(await readFile(join(REPO, "packages", dir, "package.json"), "utf8"));
      expect(versions[name]).toBe(pkg.version);
    }
    expect(buildKeyParts(settings, "b", ["e"])).toMatchObject({
      versions,
      onnxFormat: ONNX_BUILD_FORMAT,
      base: "b",
      experts: ["e"],
    });
  });

  it("changes when any keyed package version changes", () => {
    const key = buildCacheKey(settings, "b", ["e1", "e2"]);
    expect(buildCacheKey({ ...settings }, "b", ["e1", "e2"])).toBe(key);
    for (const name of KEYED_PACKAGES) {
      const bumped = { ...settings, versions: { ...settings.versions, [name]: "99.0.0" } };
      expect(buildCacheKey(bumped, "b", ["e1", "e2"]), name).not.toBe(key);
    }
    expect(buildCacheKey({ ...settings, onnxFormat: "other" }, "b", ["e1", "e2"])).not.toBe(key);
    expect(settings.fusedOps).toBe("none");
    expect(buildCacheKey({ ...settings, fusedOps: "contrib" }, "b", ["e1", "e2"])).not.toBe(key);
    expect(buildCacheKey(settings, "b", ["e2", "e1"])).not.toBe(key);
  });
});

describe("runSubmit plans before it builds", () => {
  for (const [method, hyper, message] of BAD_HYPER) {
    it(`${method} ${JSON.stringify(hyper)} fails before any build, naming the field; no cache/onnx-* folder`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "submit-plan-"));
      const { config, out } = await makeTinySetup(dir);
      const text = await readFile(config, "utf8");
      const hyperYaml = Object.entries(hyper)
        .map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)
        .join("\n");
      await writeFile(
        config,
        text.replace("  method: osm", `  method: ${method}\n  hyperparameters:\n${hyperYaml}`),
      );
      const run = runSubmit({ root: REPO, configFile: config, progress: false, log: () => {} });
      await expect(run).rejects.toThrow(ConfigError);
      await expect(
        runSubmit({ root: REPO, configFile: config, progress: false, log: () => {} }),
      ).rejects.toThrow(message);
      const cache = join(dir, "out", "cache");
      const builds = existsSync(cache)
        ? (await readdir(cache)).filter((n) => n.startsWith("onnx-"))
        : [];
      expect(builds).toEqual([]);
      expect(existsSync(out)).toBe(false);
    });
  }
});

describe("defaults and flags", () => {
  it("the build cache defaults to a per-user folder ($LORA_MERGE_CACHE, $XDG_CACHE_HOME, ~/.cache)", () => {
    expect(defaultCacheDir({ LORA_MERGE_CACHE: "/c" })).toBe("/c");
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/x" })).toBe(join("/x", "lora-merge", "onnx"));
    expect(defaultCacheDir({})).toMatch(/\.cache[\\/]lora-merge[\\/]onnx$/);
  });
  it("--hyper values parse as JSON when they can, else as strings", () => {
    expect(parseHyperFlags(["density=0.5", "method=ties", "normalize=false", 'x="7"'])).toEqual({
      density: 0.5,
      method: "ties",
      normalize: false,
      x: "7",
    });
    expect(() => parseHyperFlags(["=3"])).toThrow(SubmitError);
  });
});

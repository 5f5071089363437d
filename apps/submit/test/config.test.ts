import { copyFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cacheKey, canonicalJson } from "../src/cache.js";
import { CHOICE_SCORES } from "@merge/eval";
import { FUSED_OPS, MODEL_DTYPES, WEIGHT_QUANTS } from "@merge/mistral-onnx";
import {
  configJsonSchema,
  configSchemaText,
  DEFAULT_CONFIG,
  loadConfig,
  parseConfig,
} from "../src/config.js";
import { SafetensorsCheckpoint } from "@merge/tensor-io";
import { ConfigError, SubmitError } from "../src/errors.js";
import { planOutputs } from "../src/outputs.js";
import { resolveModelSource } from "../src/sources.js";
import { findWorkspaceRoot } from "../src/workspace.js";
import { REPO, TINY_BASE } from "./helpers.js";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";

/** A Hub cache (huggingface_hub layout) holding `repo@main` with the given files of the tiny base. */
async function cachedHubRepo(
  repo: string,
  files: Record<string, string>,
): Promise<{ cacheDir: string; snapshot: string }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "submit-hub-"));
  const folder = join(cacheDir, `models--${repo.replace("/", "--")}`);
  const snapshot = join(folder, "snapshots", COMMIT);
  await mkdir(join(folder, "refs"), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  await writeFile(join(folder, "refs", "main"), COMMIT);
  for (const [name, from] of Object.entries(files)) await copyFile(from, join(snapshot, name));
  return { cacheDir, snapshot };
}

const TINY_FILES = (weights: Record<string, string>) => ({
  "config.json": join(TINY_BASE, "config.json"),
  "tokenizer.json": join(TINY_BASE, "tokenizer.json"),
  "tokenizer_config.json": join(TINY_BASE, "tokenizer_config.json"),
  ...weights,
});

describe("config", () => {
  it("an empty config is the embedded default", () => {
    expect(parseConfig({}, "c.yaml")).toEqual(DEFAULT_CONFIG);
    expect(parseConfig(null, "c.yaml")).toEqual(DEFAULT_CONFIG);
    expect(DEFAULT_CONFIG.runtime.choiceScoring).toBe("shared-cache");
  });

  it("the shipped embedded config is the default plus explicit threads", async () => {
    const c = await loadConfig(join(REPO, "configs/embedded.yaml"));
    expect({ ...c, runtime: { ...c.runtime, threads: undefined } }).toEqual({
      ...DEFAULT_CONFIG,
      runtime: { ...DEFAULT_CONFIG.runtime, threads: undefined },
    });
  });

  it("the shipped Mistral-7B config pins the five predibase experts", async () => {
    const c = await loadConfig(join(REPO, "configs/mistral-7b.yaml"));
    expect(c.base).toBe("mistralai/Mistral-7B-v0.1");
    expect(c.experts).toEqual([
      "predibase/magicoder@58d0eedad92a223cd45e94534450066952c6de25",
      "predibase/conllpp@b9d370f421cb61389e345763ec629e50a58c2676",
      "predibase/cnn@dec34c493cc448bb8a8e322adf874198af3399b5",
      "predibase/agnews_explained@8efbbefadd6a24b8df7a2697a13a321054b4f8f1",
      "predibase/gsm8k@d54e59aa31095b6670d0b2717e0082e76660a0c1",
    ]);
    expect(c.runtime).toMatchObject({
      dtype: "fp16",
      executionProvider: "cuda",
      choiceScoring: "batched",
    });
  });

  it("rejects wrong types and values, naming the field", () => {
    const bad: Array<[unknown, RegExp]> = [
      [[1, 2], /must be a mapping at the top level/],
      [{ experts: [] }, /"experts" must name at least one expert/],
      [{ experts: "a" }, /"experts" must be a list of non-empty strings/],
      [{ seed: -1 }, /"seed" must be an integer ≥ 0/],
      [{ budgetSeconds: 0 }, /"budgetSeconds" must be a positive number/],
      [{ runtime: { dtype: "bf16" } }, /"runtime.dtype" must be one of "fp32", "fp16"/],
      [
        { runtime: { choiceScoring: "tiled" } },
        /"runtime.choiceScoring" must be one of "shared-cache", "batched"/,
      ],
      [
        { runtime: { generationBatchSize: 0 } },
        /"runtime.generationBatchSize" must be an integer ≥ 1/,
      ],
      [
        { strategy: { expertWeights: ["x"] } },
        /"strategy.expertWeights" must be a list of numbers/,
      ],
      [{ strategy: { hyperparameters: 3 } }, /"strategy.hyperparameters" must be a mapping/],
      [{ hub: { offline: "yes" } }, /"hub.offline" must be true or false/],
      [{ extra: 1 }, /unknown field "extra"/],
    ];
    for (const [raw, message] of bad) {
      expect(() => parseConfig(raw, "c.yaml"), JSON.stringify(raw)).toThrow(ConfigError);
      expect(() => parseConfig(raw, "c.yaml"), JSON.stringify(raw)).toThrow(message);
    }
  });
});

describe("sources", () => {
  it("finds the workspace root from the app folder", () => {
    expect(findWorkspaceRoot(join(REPO, "apps/submit/src"))).toBe(REPO);
  });

  it("a Hub spec that is not cached fails offline with a clear error", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "submit-hub-"));
    await expect(
      resolveModelSource(REPO, "someone/absent-model@main", "base", { offline: true, cacheDir }),
    ).rejects.toThrow(/base "someone\/absent-model@main": cannot resolve from the Hub/);
  });

  it("a cached Hub base stored as one model.safetensors (no index) resolves offline and opens", async () => {
    const { cacheDir, snapshot } = await cachedHubRepo(
      "tiny/single-file",
      TINY_FILES({ "model.safetensors": join(TINY_BASE, "model.safetensors") }),
    );
    const src = await resolveModelSource(REPO, "tiny/single-file@main", "base", {
      offline: true,
      cacheDir,
    });
    expect(src).toMatchObject({ kind: "hub", dir: snapshot, commit: COMMIT });
    const ckpt = await SafetensorsCheckpoint.open(src.dir);
    try {
      expect(ckpt.names().length).toBeGreaterThan(0);
    } finally {
      await ckpt.close();
    }
  });

  it("a cached Hub base with only consolidated.safetensors names the missing weights", async () => {
    const { cacheDir } = await cachedHubRepo(
      "tiny/consolidated",
      TINY_FILES({ "consolidated.safetensors": join(TINY_BASE, "model.safetensors") }),
    );
    await expect(
      resolveModelSource(REPO, "tiny/consolidated@main", "base", { offline: true, cacheDir }),
    ).rejects.toThrow(/no cached file matches "model\*\.safetensors/);
  });

  it("a path that is neither a folder nor a Hub name", async () => {
    await expect(resolveModelSource(REPO, "no/such/path/x", "expert", {})).rejects.toThrow(
      /neither an existing folder .* nor a Hub "owner\/name@revision"/,
    );
  });
});

describe("cache key", () => {
  it("ignores key order and changes with any setting", () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe('{"a":[1,{"c":3,"d":2}],"b":1}');
    const base = {
      base: "x",
      experts: ["a", "b"],
      method: "osm",
      hyperparameters: { gamma: 1 },
      seed: 0,
    };
    expect(cacheKey(base)).toBe(cacheKey({ ...base }));
    expect(cacheKey(base)).not.toBe(cacheKey({ ...base, seed: 1 }));
    expect(cacheKey(base)).not.toBe(cacheKey({ ...base, experts: ["b", "a"] }));
    expect(cacheKey(base)).not.toBe(cacheKey({ ...base, hyperparameters: { gamma: 2 } }));
  });
});

describe("output paths", () => {
  const root = "/ws";
  it("labelled files write <out dir>/<name>", () => {
    const jobs = planOutputs(root, "/ws/out/test.csv", "data/test.csv", ["a/x.csv", "b/y.csv"]);
    expect(jobs.map((j) => [j.input, j.out, j.labelled])).toEqual([
      ["/ws/data/test.csv", "/ws/out/test.csv", false],
      ["/ws/a/x.csv", "/ws/out/x.csv", true],
      ["/ws/b/y.csv", "/ws/out/y.csv", true],
    ]);
  });

  it("refuses two labelled files with the same name, naming both", () => {
    expect(() => planOutputs(root, "/ws/out/t.csv", undefined, ["a/x.csv", "b/x.csv"])).toThrow(
      SubmitError,
    );
    expect(() => planOutputs(root, "/ws/out/t.csv", undefined, ["a/x.csv", "b/x.csv"])).toThrow(
      /--eval-labelled a\/x\.csv and --eval-labelled b\/x\.csv would both write predictions to \/ws\/out\/x\.csv/,
    );
  });

  it("refuses a labelled file that would overwrite the --out file", () => {
    expect(() => planOutputs(root, "/ws/out/test.csv", "data/test.csv", ["held/test.csv"])).toThrow(
      /--data data\/test\.csv and --eval-labelled held\/test\.csv .*\(the --out file\)/,
    );
    // Without --data the --out file is not written, so the same name is fine.
    expect(planOutputs(root, "/ws/out/test.csv", undefined, ["held/test.csv"])).toHaveLength(1);
  });

  it("refuses a labelled file inside the out folder (its predictions would replace it)", () => {
    expect(() => planOutputs(root, "/ws/out/t.csv", undefined, ["out/x.csv"])).toThrow(
      /over the input itself/,
    );
  });
});

describe("config JSON Schema", () => {
  it("configs/config.schema.json is the one generated from the zod schema (pnpm --filter submit schema)", async () => {
    const committed = await readFile(join(REPO, "configs/config.schema.json"), "utf8");
    expect(committed).toBe(configSchemaText());
  });

  it("lists the option values the packages export", () => {
    const schema = configJsonSchema() as {
      properties: { runtime: { properties: Record<string, { enum?: string[] }> } };
    };
    const runtime = schema.properties.runtime.properties;
    expect(runtime.weightQuant?.enum).toEqual([...WEIGHT_QUANTS]);
    expect(runtime.fusedOps?.enum).toEqual([...FUSED_OPS]);
    expect(runtime.dtype?.enum).toEqual([...MODEL_DTYPES]);
    expect(runtime.choiceScore?.enum).toEqual([...CHOICE_SCORES]);
  });

  it("declares each method's hyperparameters from the strategy's params", () => {
    const schema = configJsonSchema() as {
      properties: { strategy: { allOf: Array<{ if: unknown; then: unknown }> } };
    };
    const ties = schema.properties.strategy.allOf.find(
      (c) => JSON.stringify(c.if) === JSON.stringify({ properties: { method: { const: "ties" } } }),
    ) as { then: { properties: { hyperparameters: { properties: Record<string, unknown> } } } };
    const params = ties.then.properties.hyperparameters.properties;
    expect(params.density).toMatchObject({ type: "number", exclusiveMinimum: 0, maximum: 1 });
    expect(params.majoritySign).toMatchObject({ type: "string", enum: ["total", "frequency"] });
  });

  it("every shipped config references it", async () => {
    for (const f of ["embedded.yaml", "mistral-7b.yaml"]) {
      const text = await readFile(join(REPO, "configs", f), "utf8");
      expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=./config.schema.json");
    }
  });
});

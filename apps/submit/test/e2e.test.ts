import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { type LoraModule, loraModuleFromPeft } from "@merge/lora";
import { getStrategy } from "@merge/strategies";
import { PeftAdapter, SafetensorsCheckpoint } from "@merge/tensor-io";
import { describe, expect, it } from "vitest";
import { TINY_BASE, TINY_CSV, makeTinySetup, runCli } from "./helpers.js";

/** ΔW = scale · B·A as a dense out × in matrix (float64 accumulation). */
function denseOf(
  B: Float32Array,
  A: Float32Array,
  rank: number,
  out: number,
  inF: number,
  scale = 1,
) {
  const d = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < rank; k++) {
      const b = B[o * rank + k]! * scale;
      for (let i = 0; i < inF; i++) d[o * inF + i]! += b * A[k * inF + i]!;
    }
  }
  return d;
}

function relativeError(got: Float64Array, want: Float64Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff += (got[i]! - want[i]!) ** 2;
    norm += want[i]! ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

/** ROUGE-1 F1 as rouge_score defines it: lowercase [a-z0-9]+ tokens, clipped unigram overlap. */
function rouge1F(target: string, prediction: string): number {
  const tokens = (t: string) => t.toLowerCase().match(/[a-z0-9]+/g) ?? [];
  const ref = tokens(target);
  const hyp = tokens(prediction);
  const counts = new Map<string, number>();
  for (const t of ref) counts.set(t, (counts.get(t) ?? 0) + 1);
  let overlap = 0;
  for (const t of hyp) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      overlap++;
      counts.set(t, c - 1);
    }
  }
  if (overlap === 0) return 0;
  const p = overlap / hyp.length;
  const r = overlap / ref.length;
  return (2 * p * r) / (p + r);
}

const IDS = (parse(TINY_CSV, { columns: true }) as Array<{ id: string }>).map((r) => r.id);

function readPredictions(text: string) {
  return parse(text, { columns: true }) as Array<{
    id: string;
    prediction: string;
    dummy_field: string;
  }>;
}

describe("submit end to end on a tiny random Mistral with two PEFT experts", () => {
  it("CSV in → CSV out: every id in order, valid predictions, byte-identical on a second run", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-e2e-"));
    const { config, out } = await makeTinySetup(dir);

    const first = await runCli(["--config", config, "--no-progress"]);
    expect(first.stderr).not.toMatch(/unexpected failure/);
    expect(first.code, first.stderr).toBe(0);
    const text1 = await readFile(out, "utf8");
    const rows = readPredictions(text1);
    expect(rows.map((r) => r.id)).toEqual(IDS);
    expect(text1.split("\n")[0]).toBe("id,prediction,dummy_field");
    for (const r of rows) {
      expect(r.dummy_field).toBe("0");
      expect(r.prediction.trim()).not.toBe("");
    }
    expect(["0", "1", "2"]).toContain(rows[0]!.prediction);
    expect(["0", "1"]).toContain(rows[2]!.prediction);

    // The report names every phase and the rows answered.
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report.phases.map((p: { name: string }) => p.name)).toEqual([
      "resolve",
      "load",
      "merge",
      "build runtime",
      "evaluate",
      "write",
    ]);
    expect(report.experts).toHaveLength(2);
    expect(report.modulesMerged).toBe(4);
    expect(report.outputs[0]).toMatchObject({ rows: 5, cutByBudget: 0, answeredByModel: 5 });
    expect(report.cache.hit).toBe(false);

    // A second, independent run (fresh build in a new cache) gives the same bytes.
    const second = await runCli([
      "--config",
      config,
      "--out",
      join(dir, "out2", "test.csv"),
      "--no-progress",
    ]);
    expect(second.code, second.stderr).toBe(0);
    expect(await readFile(join(dir, "out2", "test.csv"), "utf8")).toBe(text1);

    // A third run reuses the cached ONNX build and still gives the same bytes.
    const third = await runCli(["--config", config, "--no-progress"]);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr).toContain("using the cached ONNX build");
    expect(await readFile(out, "utf8")).toBe(text1);
    expect((await readdir(join(dir, "out"))).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("a routed method (the default, lift_routing) answers every row, reports its kind and reruns byte-identically", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-routed-"));
    const { config, out } = await makeTinySetup(dir);
    const run = (o: string) =>
      runCli(["--config", config, "--method", "lift_routing", "--out", o, "--no-progress"]);
    const first = await run(out);
    expect(first.code, first.stderr).toBe(0);
    const text = await readFile(out, "utf8");
    expect(readPredictions(text).map((r) => r.id)).toEqual(IDS);
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report.method).toBe("lift_routing");
    expect(report.resultKind).toBe("routed");
    expect(report.modulesMerged).toBe(4);
    // A fresh build elsewhere gives the same bytes (deterministic routed build and run).
    const second = await run(join(dir, "out2", "test.csv"));
    expect(second.code, second.stderr).toBe(0);
    expect(await readFile(join(dir, "out2", "test.csv"), "utf8")).toBe(text);
  });

  it('runtime.generationGraph "loop" (greedy loop inside generate.onnx) writes the same bytes as the host loop and reuses the same build', async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-loop-"));
    const { config, out } = await makeTinySetup(dir);
    const loopConfig = join(dir, "config-loop.yaml");
    const text = await readFile(config, "utf8");
    expect(text).toContain("  generationBatchSize: 2\n");
    await writeFile(
      loopConfig,
      text.replace(
        "  generationBatchSize: 2\n",
        "  generationBatchSize: 2\n  generationGraph: loop\n",
      ),
    );
    const run = (c: string, o: string) =>
      runCli(["--config", c, "--method", "lift_routing", "--out", o, "--no-progress"]);
    const host = await run(config, out);
    expect(host.code, host.stderr).toBe(0);
    const loop = await run(loopConfig, join(dir, "out-loop", "test.csv"));
    expect(loop.code, loop.stderr).toBe(0);
    // The option does not change the build: the loop run uses the host run's cached build.
    expect(loop.stderr).toContain("using the cached ONNX build");
    expect(await readFile(join(dir, "out-loop", "test.csv"), "utf8")).toBe(
      await readFile(out, "utf8"),
    );
  });

  it("temporaries left by killed runs are removed; those of a live run are kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-stale-"));
    const { config } = await makeTinySetup(dir);
    // A pid that is certainly gone: a child that has exited.
    const child = spawnSync(process.execPath, ["-e", "process.pid"]);
    const dead = child.pid!;
    const live = process.pid; // this test runner outlives the CLI it starts
    const out = join(dir, "out");
    await mkdir(join(out, "cache", `onnx-abc123.tmp-${dead}`), { recursive: true });
    await writeFile(join(out, "cache", `onnx-abc123.tmp-${dead}`, "model.onnx.data"), "partial");
    await writeFile(join(out, `.test.csv.${dead}.0a1b.tmp`), "partial");
    await writeFile(join(out, `.report.json.${dead}.0a1b2c.tmp`), "partial");
    await writeFile(join(out, `.test.csv.${live}.beef.tmp`), "in progress");
    const r = await runCli(["--config", config, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed 3 temporary files left by killed runs/);
    const left = (await readdir(out)).filter((f) => f.endsWith(".tmp"));
    expect(left).toEqual([`.test.csv.${live}.beef.tmp`]);
    expect((await readdir(join(out, "cache"))).some((f) => f.includes(".tmp-"))).toBe(false);
  });

  it("a budget that runs out still writes every id, with fallbacks, and exits 3", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-budget-"));
    const { config, out } = await makeTinySetup(dir);
    const r = await runCli(["--config", config, "--budget", "0.001", "--no-progress"]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(
      /warning: the time budget of 0\.001 s ran out: 5 of 5 rows were cut.*The CSV is complete and valid/,
    );
    expect(r.stderr).not.toMatch(/^error:/m);
    // The budget holds across every phase: merge and build stop at the deadline too.
    expect(r.stderr).toMatch(
      /the time budget ran out during the (merge|ONNX build) \(0 of 4 modules merged\)/,
    );
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report).toMatchObject({ exitCode: 3, executionProvider: null, modulesMerged: 0 });
    expect(report.phases.map((p: { name: string }) => p.name)).not.toContain("build runtime");
    const cache = join(dir, "out", "cache");
    expect(
      existsSync(cache) ? (await readdir(cache)).filter((f) => f.startsWith("onnx-")) : [],
    ).toEqual([]);
    const rows = readPredictions(await readFile(out, "utf8"));
    expect(rows.map((x) => x.id)).toEqual(IDS);
    expect(rows.every((x) => x.prediction.trim() !== "")).toBe(true);
  });

  it("a labelled CSV with a task column gets one metrics line per task", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-tasks-"));
    const { config } = await makeTinySetup(dir);
    const labelled = join(dir, "mixed.csv");
    await writeFile(
      labelled,
      `id,input,target,answer_choices,eval_type,task
0,"2 + 2 =",0,"['4', '5']",multiple_choice,arith
1,"3 + 3 =",1,"['7', '6']",multiple_choice,arith
2,"Colour of the sky:",1,"['green', 'blue', 'red']",multiple_choice,colours
3,"Summarise: the cat sat on the mat.",the cat sat,None,generation,summary
`,
    );
    const r = await runCli(["--config", config, "--eval-labelled", labelled, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report.metrics.map((m: { task: string; rows: number }) => [m.task, m.rows])).toEqual([
      ["mixed/arith", 2],
      ["mixed/colours", 1],
      ["mixed/summary", 1],
    ]);
    expect(r.stderr).toMatch(/\| mixed\/arith \| 2 \|/);
  });

  it("--eval-labelled answers labelled files and reports accuracy and ROUGE per file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-labelled-"));
    const { config } = await makeTinySetup(dir);
    const labelled = join(dir, "tiny_task.csv");
    await writeFile(
      labelled,
      `id,input,target,answer_choices,eval_type
0,"2 + 2 =",0,"['4', '5']",multiple_choice
1,"Colour of the sky:",1,"['green', 'blue', 'red']",multiple_choice
2,"Summarise: the cat sat on the mat.",the cat sat,None,generation
`,
    );
    const r = await runCli(["--config", config, "--eval-labelled", labelled, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    const preds = readPredictions(await readFile(join(dir, "out", "tiny_task.csv"), "utf8"));
    expect(preds.map((p) => p.id)).toEqual(["0", "1", "2"]);
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    const [m] = report.metrics;
    expect(m).toMatchObject({
      task: "tiny_task",
      rows: 3,
      multipleChoiceRows: 2,
      generationRows: 1,
    });
    // Scores recomputed here from the CSV's targets and the written predictions.
    const rows = parse(await readFile(labelled, "utf8"), { columns: true }) as Array<{
      id: string;
      target: string;
      eval_type: string;
    }>;
    const predOf = new Map(preds.map((p) => [p.id, p.prediction]));
    const mc = rows.filter((x) => x.eval_type === "multiple_choice");
    const gen = rows.filter((x) => x.eval_type === "generation");
    const correct = mc.filter((x) => predOf.get(x.id) === x.target).length;
    expect(m.accuracy).toBeCloseTo(correct / mc.length, 12);
    const rouge = gen.map((x) => rouge1F(x.target, predOf.get(x.id)!));
    expect(m.rouge1).toBeCloseTo(rouge.reduce((a, b) => a + b, 0) / gen.length, 9);
    expect(await readFile(join(dir, "out", "metrics.md"), "utf8")).toContain("| tiny_task | 3 |");
    // The test data was not answered: --eval-labelled replaces --data unless it is given.
    expect(existsSync(join(dir, "out", "test.csv"))).toBe(false);
  });

  it("--merge-only --save-adapter writes a PEFT adapter covering every merged module", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-merge-"));
    const { config } = await makeTinySetup(dir);
    const save = join(dir, "merged");
    const r = await runCli(["--config", config, "--merge-only", "--save-adapter", save]);
    expect(r.code, r.stderr).toBe(0);
    const adapter = await PeftAdapter.open(save);
    // The merge recomputed here from the expert adapters with the config's method and seed.
    const experts = await Promise.all(
      ["a", "b"].map((n) => PeftAdapter.open(join(dir, "experts", n))),
    );
    const base = await SafetensorsCheckpoint.open(TINY_BASE);
    try {
      const modules = adapter.modules();
      expect(modules).toEqual([
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.1.mlp.down_proj",
        "model.layers.1.self_attn.o_proj",
      ]);
      const osm = getStrategy("osm");
      const hyper = osm.checkHyper({});
      for (const module of modules) {
        const [outF, inF] = base.info(`${module}.weight`).shape as [number, number];
        const inputs: Array<LoraModule | null> = [];
        for (const e of experts) {
          inputs.push(
            e.modules().includes(module)
              ? loraModuleFromPeft(await e.readModule(module), {
                  useRslora: e.config.useRslora,
                  fanInFanOut: e.config.fanInFanOut,
                })
              : null,
          );
        }
        const want = osm.merge(
          { module, outFeatures: outF, inFeatures: inF, experts: inputs },
          hyper,
          { seed: 3 },
        );
        if (want.kind === "routed") throw new Error("osm is a static method");
        const wantDense =
          want.kind === "dense"
            ? Float64Array.from(want.delta)
            : denseOf(want.B, want.A, want.rank, outF, inF);
        const saved = loraModuleFromPeft(await adapter.readModule(module), {
          useRslora: adapter.config.useRslora,
          fanInFanOut: adapter.config.fanInFanOut,
        });
        const got = denseOf(saved.B, saved.A, saved.rank, outF, inF, saved.scale);
        expect(relativeError(got, wantDense), module).toBeLessThan(1e-5);
      }
    } finally {
      await adapter.close();
      for (const e of experts) await e.close();
      await base.close();
    }
  });
});

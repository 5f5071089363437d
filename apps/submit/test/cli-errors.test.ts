import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeTinySetup, runCli, writeTinyAdapter } from "./helpers.js";

async function setup(extra = "") {
  const dir = await mkdtemp(join(tmpdir(), "submit-err-"));
  return { dir, ...(await makeTinySetup(dir, extra)) };
}

describe("submit: clear errors on bad input", () => {
  it("--help lists the options", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of [
      "--config",
      "--method",
      "--data",
      "--out",
      "--budget",
      "--merge-only",
      "--save-adapter",
      "--adapter-rank",
      "--save-model",
      "--shard-size",
      "--eval-labelled",
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it("--list-methods lists the strategies, the default first, each with its result kind", async () => {
    const r = await runCli(["--list-methods"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(
      /^lift_routing \(default\) \[routed: ONNX model with a router per adapted module \(--save-onnx\)\]: /,
    );
    expect(r.stdout).toMatch(
      /^linear \[lowrank: ONNX model \(--save-onnx\), merged checkpoint \(--save-model\) or PEFT adapter \(--save-adapter\)\]: /m,
    );
    expect(r.stdout).toMatch(
      /^ties \[dense: ONNX model \(--save-onnx\), merged checkpoint \(--save-model\) or SVD-truncated PEFT adapter \(--save-adapter with --adapter-rank\)\]: /m,
    );
    // Each method's declared hyperparameters with their ranges or choices.
    expect(r.stdout).toMatch(
      /^ties \[dense: [^\]]*\]: .*\n {2}density: in \(0, 1\], default 0\.2\n/m,
    );
    expect(r.stdout).toContain('  majoritySign: one of "total", "frequency", default "total"\n');
    expect(r.stdout).toContain("  topK: a positive integer, default 3\n");
    expect(lines[1]).toBe("  no hyperparameters");
  });

  it("--save-adapter with a routed method says why and what to pick instead", async () => {
    const { config, dir } = await setup();
    const r = await runCli([
      "--config",
      config,
      "--method",
      "lift_routing",
      "--merge-only",
      "--save-adapter",
      join(dir, "saved"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/routed mixture.*no single LoRA adapter .* can hold.*--list-methods/s);
  });

  it("--save-model with a routed method names the export that exists (--save-onnx)", async () => {
    const { config, dir } = await setup();
    const r = await runCli([
      "--config",
      config,
      "--method",
      "lift_routing",
      "--merge-only",
      "--save-model",
      join(dir, "saved"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /--save-model: method lift_routing returns a routed mixture.*--save-onnx DIR/s,
    );
    expect(existsSync(join(dir, "saved"))).toBe(false);
  });

  it("an export folder with foreign files is refused untouched; an earlier export is replaced whole", async () => {
    const { config, dir } = await setup();
    const target = join(dir, "model");
    await mkdir(target);
    await writeFile(join(target, "notes.txt"), "mine");
    const args = ["--config", config, "--method", "linear", "--merge-only", "--save-model", target];
    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /--save-model .*model is not empty and holds files .*\(notes\.txt\)/s,
    );
    expect(await readdir(target)).toEqual(["notes.txt"]);
    // An earlier export (here with a stale extra shard of a bigger model) is replaced as a whole.
    await rm(join(target, "notes.txt"));
    await writeFile(join(target, "model-00003-of-00003.safetensors"), "stale");
    await writeFile(join(target, "config.json"), "{}");
    // A killed export's temporary sibling is swept; other hidden files beside it are not.
    const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
    await mkdir(join(dir, `.model.${dead}.0a1b.tmp`));
    await writeFile(join(dir, `.model.${dead}.0a1b.tmp`, "config.json"), "partial");
    await writeFile(join(dir, `.other.${dead}.0a1b.tmp`), "not ours");
    const ok = await runCli(args);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/removed 1 temporary file left by killed runs/);
    expect((await readdir(dir)).filter((n) => n.startsWith("."))).toEqual([
      `.other.${dead}.0a1b.tmp`,
    ]);
    const names = await readdir(target);
    expect(names).not.toContain("model-00003-of-00003.safetensors");
    expect(names).toContain("model-00001-of-00001.safetensors");
    expect(JSON.parse(await readFile(join(target, "config.json"), "utf8")).model_type).toBe(
      "mistral",
    );
    // A file where the folder should be.
    const file = join(dir, "a-file");
    await writeFile(file, "x");
    const notDir = await runCli([...args.slice(0, -1), file]);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toMatch(/--save-model .*a-file exists and is not a folder/);
  });

  it("a bad CSV names the row and column, and writes no output", async () => {
    const { dir, config, out } = await setup();
    const bad = join(dir, "bad.csv");
    await writeFile(
      bad,
      `id,input,eval_type,answer_choices\n0,q,multiple_choice,"['only one']"\n1,q,poem,\n`,
    );
    const r = await runCli(["--config", config, "--data", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}: row 1 (id "0"), line 2, column "answer_choices"`);
    expect(r.stderr).toContain(`row 2 (id "1"), line 3, column "eval_type"`);
    expect(r.stderr).not.toMatch(/unexpected failure|\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  it("--skip-bad-rows answers bad rows with placeholders and keeps every id", async () => {
    const { dir, config, out } = await setup();
    const bad = join(dir, "bad.csv");
    await writeFile(
      bad,
      `id,input,eval_type,answer_choices\n0,q,multiple_choice,"['only one']"\n1,hello,generation,\n`,
    );
    const r = await runCli(["--config", config, "--data", bad, "--skip-bad-rows", "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("answered with a placeholder");
    const { readFile } = await import("node:fs/promises");
    expect((await readFile(out, "utf8")).split("\n")[1]).toBe("0,0,0");
  });

  it("an unreadable config names the file", async () => {
    const missing = join(tmpdir(), "no-such-config-xyz.yaml");
    const r = await runCli(["--config", missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${missing}: cannot read the config`);
  });

  it("invalid YAML and unknown fields name the file and the field", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-cfg-"));
    const broken = join(dir, "broken.yaml");
    await writeFile(broken, "base: [unclosed\n");
    let r = await runCli(["--config", broken]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${broken}: not valid YAML`);

    const typo = join(dir, "typo.json");
    await writeFile(typo, JSON.stringify({ runtime: { dtpye: "fp16" } }));
    r = await runCli(["--config", typo]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${typo}: unknown field "runtime.dtpye"`);

    const wrong = join(dir, "wrong.yaml");
    await writeFile(wrong, "runtime:\n  executionProvider: tpu\n");
    r = await runCli(["--config", wrong]);
    expect(r.stderr).toContain(
      '"runtime.executionProvider" must be one of "cpu", "cuda", "webgpu"',
    );
  });

  it("an expert whose shapes do not match the base", async () => {
    const { dir, config } = await setup();
    await writeTinyAdapter(
      join(dir, "experts", "c-wrong"),
      9,
      ["model.layers.0.self_attn.q_proj"],
      {
        override: { inFeatures: 32, outFeatures: 64 },
      },
    );
    const r = await runCli(["--config", config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /expert .*c-wrong does not match base .*: module model\.layers\.0\.self_attn\.q_proj gives a 64×32 delta \(rank 2\), the base weight is 64×64/,
    );
  });

  it("an expert with modules the base lacks", async () => {
    const { dir, config } = await setup();
    await writeTinyAdapter(join(dir, "experts", "d-extra"), 8, [
      "model.layers.0.self_attn.q_proj",
      "model.layers.7.self_attn.q_proj",
    ]);
    const r = await runCli(["--config", config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /expert .*d-extra does not match base .*: 1 module not in the base .*model\.layers\.7\.self_attn\.q_proj/,
    );
  });

  it("--out or --save-adapter inside an expert or base folder is refused and the folder is untouched", async () => {
    const { dir, config } = await setup();
    const expertDir = join(dir, "experts", (await readdir(join(dir, "experts")))[0]!);
    const before = await readdir(expertDir);
    const weights = await readFile(join(expertDir, "adapter_model.safetensors"));
    const r = await runCli([
      "--config",
      config,
      "--out",
      join(expertDir, "adapter_model.safetensors"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /the output folder .* is inside the model folder of .*Choose a folder outside/s,
    );
    const saved = await runCli([
      "--config",
      config,
      "--method",
      "linear",
      "--merge-only",
      "--save-adapter",
      expertDir,
    ]);
    expect(saved.code).toBe(1);
    expect(saved.stderr).toMatch(/--save-adapter .* is inside the model folder/s);
    const model = await runCli([
      "--config",
      config,
      "--method",
      "linear",
      "--merge-only",
      "--save-model",
      join(expertDir, "merged"),
    ]);
    expect(model.code).toBe(1);
    expect(model.stderr).toMatch(/--save-model .* is inside the model folder/s);
    expect(await readdir(expertDir)).toEqual(before);
    expect(await readFile(join(expertDir, "adapter_model.safetensors"))).toEqual(weights);
  });

  it("an unknown merge method lists the known ones", async () => {
    const { config } = await setup();
    const r = await runCli(["--config", config, "--method", "nope"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown strategy "nope" \(known: lift_routing, osm, /);
  });

  it("a typo in a data/zoo path is a typo (did you mean …), not a missing zoo", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-zoo-"));
    const cfg = join(dir, "c.yaml");
    await writeFile(cfg, "base: data/zoo/base\nexperts: [data/zoo/experts/mth]\n");
    const r = await runCli(["--config", cfg, "--out", join(dir, "o.csv")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /expert "data\/zoo\/experts\/mth": .*Did you mean "data\/zoo\/experts\/math"\?/,
    );
    expect(r.stderr).not.toContain("is missing or incomplete");
    const glob = join(dir, "g.yaml");
    await writeFile(glob, "base: data/zoo/base\nexperts: [data/zoo/expert/*]\n");
    const g = await runCli(["--config", glob, "--out", join(dir, "o.csv")]);
    expect(g.stderr).toMatch(/Did you mean "data\/zoo\/experts"/);
  });

  it("--hyper sets a hyperparameter, checked before any build", async () => {
    const { config, dir } = await setup();
    const bad = await runCli(["--config", config, "--method", "ties", "--hyper", "density=5"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/hyperparameter "density" must be in \(0, 1\], got 5/);
    expect(existsSync(join(dir, "out", "cache"))).toBe(false);
    const malformed = await runCli(["--config", config, "--hyper", "density"]);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/--hyper "density": expected KEY=VALUE/);
    const ok = await runCli([
      "--config",
      config,
      "--method",
      "ties",
      "--hyper",
      "density=0.5",
      "--hyper",
      "majoritySign=frequency",
      "--no-progress",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    expect(report.hyperparameters).toMatchObject({ density: 0.5, majoritySign: "frequency" });
  });

  it("a .bin adapter gets the conversion hint, not 'missing'", async () => {
    const { config, dir } = await setup();
    const expert = join(dir, "experts", "a");
    const { rename } = await import("node:fs/promises");
    await rename(join(expert, "adapter_model.safetensors"), join(expert, "adapter_model.bin"));
    const r = await runCli(["--config", config, "--no-progress"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PyTorch pickle.*Convert it once with Python/s);
  });
});

// --save-model / --save-adapter end to end on the embedded zoo (data/zoo, bf16) and on an fp32
// copy of its base: the CLI writes the exports, then tools/fixtures/submit/check_saved_model.py
// loads them with transformers and PEFT and checks them against a merge recomputed in plain
// PyTorch. It needs <repo>/.venv/bin/python (CI installs tools/python/requirements.txt there);
// without it only the Python part is skipped, saying so. The model cards are checked here.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsCheckpoint, encodeFromF32, writeSafetensors } from "@merge/tensor-io";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { REPO, runCli } from "./helpers.js";

const PYTHON = join(REPO, ".venv", "bin", "python");
const HAVE_PYTHON = existsSync(PYTHON);
const ZOO = join(REPO, "data", "zoo");
const ZOO_BASE = join(ZOO, "base");

/** The YAML front matter of a model card, parsed. */
function frontMatter(card: string): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(card);
  if (m === null) throw new Error("no YAML front matter");
  return parse(m[1]!) as Record<string, unknown>;
}

/** An fp32 copy of the zoo base (weights widened exactly from bf16), with its tokenizer. */
async function fp32Base(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const base = await SafetensorsCheckpoint.open(ZOO_BASE);
  try {
    await writeSafetensors(
      join(dir, "model.safetensors"),
      base.names().map((name) => ({
        name,
        dtype: "F32" as const,
        shape: base.info(name).shape,
        data: async () => encodeFromF32(await base.readF32(name), "F32"),
      })),
      { metadata: { format: "pt" } },
    );
  } finally {
    await base.close();
  }
  const config = JSON.parse(await readFile(join(ZOO_BASE, "config.json"), "utf8"));
  await writeFile(
    join(dir, "config.json"),
    JSON.stringify({ ...config, torch_dtype: "float32" }, null, 2),
  );
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await copyFile(join(ZOO_BASE, f), join(dir, f));
  }
}

describe("--save-model and --save-adapter on the embedded zoo", () => {
  let dir = "";
  const experts: string[] = [];
  const cases: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "submit-save-model-"));
    const zooExperts = (await readdir(join(ZOO, "experts"))).sort();
    experts.push(...zooExperts.map((n) => join(ZOO, "experts", n)));
    // bf16 zoo, a low-rank method: small shards so the checkpoint has several.
    const lin = await runCli([
      "--method",
      "linear",
      "--merge-only",
      "--save-model",
      join(dir, "linear"),
      "--shard-size",
      "4MB",
      "--save-adapter",
      join(dir, "linear-adapter"),
      "--out",
      join(dir, "linear-out", "test.csv"),
      "--no-progress",
    ]);
    expect(lin.code, lin.stderr).toBe(0);
    cases.push({
      name: "linear, bf16 zoo",
      base: ZOO_BASE,
      experts,
      method: "linear",
      model: join(dir, "linear"),
      adapter: join(dir, "linear-adapter"),
    });
    // bf16 zoo, a dense method, with an SVD-truncated adapter.
    const ties = await runCli([
      "--method",
      "ties",
      "--merge-only",
      "--save-model",
      join(dir, "ties"),
      "--save-adapter",
      join(dir, "ties-adapter"),
      "--adapter-rank",
      "8",
      "--out",
      join(dir, "ties-out", "test.csv"),
      "--no-progress",
    ]);
    expect(ties.code, ties.stderr).toBe(0);
    expect(ties.stderr).toMatch(
      /--save-adapter: rank-8 SVD truncation of the dense merge: relative Frobenius error \d\.\d+ overall, worst \d\.\d+ \(model\.layers\./,
    );
    const report = JSON.parse(await readFile(join(dir, "ties-out", "report.json"), "utf8"));
    expect(report.savedModel).toBe(join(dir, "ties"));
    expect(report.adapterTruncation.rank).toBe(8);
    cases.push({
      name: "ties, bf16 zoo",
      base: ZOO_BASE,
      experts,
      method: "ties",
      model: join(dir, "ties"),
      adapter: join(dir, "ties-adapter"),
      adapter_rank: 8,
      truncation: Object.fromEntries(
        (report.adapterTruncation.modules as Array<{ module: string; relativeError: number }>).map(
          (m) => [m.module, m.relativeError],
        ),
      ),
    });
    // fp32 base, two experts, a dense method.
    await fp32Base(join(dir, "base32"));
    const two = experts.slice(0, 2);
    await writeFile(
      join(dir, "fp32.yaml"),
      `base: ${join(dir, "base32")}\nexperts:\n${two.map((e) => `  - ${e}\n`).join("")}out: ${join(dir, "fp32-out", "test.csv")}\nstrategy:\n  method: ties\n`,
    );
    const fp32 = await runCli([
      "--config",
      join(dir, "fp32.yaml"),
      "--merge-only",
      "--save-model",
      join(dir, "ties32"),
      "--no-progress",
    ]);
    expect(fp32.code, fp32.stderr).toBe(0);
    cases.push({
      name: "ties, fp32 base",
      base: join(dir, "base32"),
      experts: two,
      method: "ties",
      model: join(dir, "ties32"),
      adapter: null,
    });
  }, 240_000);

  it("writes a sharded checkpoint folder with config, generation config, tokenizer and card", async () => {
    const names = (await readdir(join(dir, "linear"))).sort();
    const shards = names.filter((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n));
    expect(shards.length).toBeGreaterThan(1);
    expect(names).toEqual(
      [
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        ...shards,
      ].sort(),
    );
    // No temporary folder is left beside the exports.
    expect((await readdir(dir)).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("model cards parse as YAML front matter with the Hub's keys and name every source", async () => {
    for (const [folder, library, method] of [
      ["linear", "transformers", "linear"],
      ["linear-adapter", "peft", "linear"],
      ["ties", "transformers", "ties"],
      ["ties-adapter", "peft", "ties"],
    ] as const) {
      const card = await readFile(join(dir, folder, "README.md"), "utf8");
      const meta = frontMatter(card);
      expect(meta.base_model, folder).toBe(ZOO_BASE);
      expect(meta.library_name, folder).toBe(library);
      expect(meta.tags, folder).toEqual(expect.arrayContaining(["merge", method]));
      for (const e of experts) expect(card, folder).toContain(e);
      expect(card).toContain("revision `local folder (no revision)`");
      expect(card).toMatch(new RegExp(`- method: \`${method}\``));
      expect(card).toMatch(/- `submit` \d+\.\d+\.\d+/);
      expect(card).toContain(
        `pnpm --filter submit start -- --method ${method} --merge-only --save-model ${join(dir, method)}`,
      );
    }
    const tiesCard = await readFile(join(dir, "ties-adapter", "README.md"), "utf8");
    expect(frontMatter(tiesCard).tags).toContain("svd-truncated");
    expect(tiesCard).toMatch(/adapter rank: 8; relative Frobenius error .*: \d\.\d+/);
    expect(tiesCard).toContain("density: 0.2");
  });

  it("adapter configs name the base by absolute path", async () => {
    for (const folder of ["linear-adapter", "ties-adapter"]) {
      const cfg = JSON.parse(await readFile(join(dir, folder, "adapter_config.json"), "utf8"));
      expect(cfg.base_model_name_or_path).toBe(ZOO_BASE);
    }
  });

  it.skipIf(!HAVE_PYTHON)(
    "transformers and PEFT load the exports and their weights equal base + the merged update",
    async () => {
      const spec = join(dir, "cases.json");
      await writeFile(spec, JSON.stringify({ cases }));
      const r = spawnSync(
        PYTHON,
        [join(REPO, "tools", "fixtures", "submit", "check_saved_model.py"), spec],
        { encoding: "utf8", env: { ...process.env, HF_HUB_OFFLINE: "1" } },
      );
      const lines = r.stdout.split("\n").filter((l) => l !== "");
      expect(
        lines.filter((l) => !l.startsWith("ok ")),
        r.stderr,
      ).toEqual([]);
      expect(r.status, r.stderr).toBe(0);
      expect(lines.length).toBeGreaterThan(25);
    },
    240_000,
  );
  if (!HAVE_PYTHON) {
    it.skip(`Python check skipped: no ${PYTHON} (install tools/python/requirements.txt there)`);
  }
});

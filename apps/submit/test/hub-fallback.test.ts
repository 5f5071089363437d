import { copyFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveModelSource } from "../src/sources.js";
import { REPO, runCli, TINY_BASE, writeTinyAdapter } from "./helpers.js";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const BASE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"];

/** A Hub cache (huggingface_hub layout) holding tiny/base@main: the tiny Mistral's files. */
async function cachedTinyBase(): Promise<{ cacheDir: string; snapshot: string }> {
  const cacheDir = await mkdtemp(join(tmpdir(), "submit-hub-"));
  const folder = join(cacheDir, "models--tiny--base");
  const snapshot = join(folder, "snapshots", COMMIT);
  await mkdir(join(folder, "refs"), { recursive: true });
  await mkdir(snapshot, { recursive: true });
  await writeFile(join(folder, "refs", "main"), COMMIT);
  for (const name of BASE_FILES) await copyFile(join(TINY_BASE, name), join(snapshot, name));
  return { cacheDir, snapshot };
}

/** An endpoint nothing listens on (a port that was just free): every request is refused. */
async function refusingEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return `http://127.0.0.1:${port}`;
}

describe("Hub unreachable, HF_HUB_OFFLINE unset: the cache is used and the warning reaches the user", () => {
  it("resolveModelSource passes the warning on, naming the role and spec", async () => {
    const { cacheDir, snapshot } = await cachedTinyBase();
    const saved = { endpoint: process.env.HF_ENDPOINT, home: process.env.HF_HOME };
    process.env.HF_ENDPOINT = await refusingEndpoint();
    process.env.HF_HOME = cacheDir; // no token file there
    try {
      const warnings: string[] = [];
      const src = await resolveModelSource(
        REPO,
        "tiny/base@main",
        "base",
        { offline: false, cacheDir },
        (m) => warnings.push(m),
      );
      expect(src).toMatchObject({ kind: "hub", dir: snapshot, commit: COMMIT });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        /^warning: base "tiny\/base@main": the Hub could not be reached for tiny\/base@main .*ECONNREFUSED.*using the cached snapshot/,
      );
    } finally {
      for (const [k, v] of [
        ["HF_ENDPOINT", saved.endpoint],
        ["HF_HOME", saved.home],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("the CLI prints it on stderr and carries on", async () => {
    const { cacheDir } = await cachedTinyBase();
    const dir = await mkdtemp(join(tmpdir(), "submit-hub-cli-"));
    await writeTinyAdapter(join(dir, "experts", "a"), 1, ["model.layers.0.self_attn.q_proj"]);
    await writeTinyAdapter(join(dir, "experts", "b"), 2, ["model.layers.0.self_attn.q_proj"]);
    const config = join(dir, "config.yaml");
    await writeFile(
      config,
      `base: tiny/base@main
experts:
  - ${join(dir, "experts")}/*
out: ${join(dir, "out", "test.csv")}
strategy:
  method: osm
hub:
  offline: false
  cacheDir: ${cacheDir}
`,
    );
    const r = await runCli(
      ["--config", config, "--merge-only", "--save-adapter", join(dir, "merged"), "--no-progress"],
      { HF_HUB_OFFLINE: "", HF_ENDPOINT: await refusingEndpoint(), HF_HOME: cacheDir },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /warning: base "tiny\/base@main": the Hub could not be reached .*using the cached snapshot/,
    );
    // A Hub base is named by its repo id and pinned to the commit it resolved to, in PEFT's
    // adapter config and in the model card.
    const cfg = JSON.parse(await readFile(join(dir, "merged", "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ base_model_name_or_path: "tiny/base", revision: COMMIT });
    const card = await readFile(join(dir, "merged", "README.md"), "utf8");
    expect(card).toMatch(/^---\nbase_model: tiny\/base\nlibrary_name: peft\n/);
    expect(card).toContain(`- \`tiny/base\`, revision \`${COMMIT}\``);
  });
});

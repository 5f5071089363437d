import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, runCli } from "./helpers.js";

/** Multiple-choice rows of data/test.csv the check answers (kept small: test time). */
const MC_ROWS = 48;
const GENERATION_ROWS = 2;

const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;

describe('runtime.choiceScoring "batched" on the embedded zoo (configs/embedded.yaml)', () => {
  let dir: string;
  let data: string;
  let batchedConfig: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "submit-choice-scoring-"));
    env = { LORA_MERGE_CACHE: join(dir, "cache") };
    // A slice of the competition CSV: its first multiple-choice rows and two generation rows.
    const rows = parse(await readFile(join(REPO, "data/test.csv"), "utf8"), {
      columns: true,
    }) as Array<Record<string, string>>;
    const mc = rows.filter((r) => r.eval_type === "multiple_choice").slice(0, MC_ROWS);
    const gen = rows.filter((r) => r.eval_type === "generation").slice(0, GENERATION_ROWS);
    expect(mc).toHaveLength(MC_ROWS);
    const header = Object.keys(rows[0] as Record<string, string>);
    data = join(dir, "test.csv");
    await writeFile(
      data,
      `${[header.join(","), ...[...gen, ...mc].map((r) => header.map((h) => quote(r[h] ?? "")).join(","))].join("\n")}\n`,
    );
    const embedded = await readFile(join(REPO, "configs/embedded.yaml"), "utf8");
    const line = embedded.split("\n").find((l) => l.startsWith("  choiceTokenization:"));
    expect(line).toBeDefined();
    batchedConfig = join(dir, "embedded-batched.yaml");
    await writeFile(
      batchedConfig,
      embedded.replace(`${line}\n`, `${line}\n  choiceScoring: batched\n`),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("writes the same predictions CSV as shared-cache, on the same build", async () => {
    const run = (config: string, out: string) =>
      runCli(["--config", config, "--data", data, "--out", out, "--no-progress"], env);
    const sharedOut = join(dir, "shared", "test.csv");
    const batchedOut = join(dir, "batched", "test.csv");
    const shared = await run("configs/embedded.yaml", sharedOut);
    expect(shared.code, shared.stderr).toBe(0);
    const batched = await run(batchedConfig, batchedOut);
    expect(batched.code, batched.stderr).toBe(0);
    expect(batched.stderr).toContain("using the cached ONNX build"); // not a build option
    const reports = await Promise.all(
      [sharedOut, batchedOut].map(async (o) =>
        JSON.parse(await readFile(join(o, "..", "report.json"), "utf8")),
      ),
    );
    expect(reports.map((r) => r.config.runtime.choiceScoring)).toEqual(["shared-cache", "batched"]);
    const text = await readFile(sharedOut, "utf8");
    expect(await readFile(batchedOut, "utf8")).toBe(text);
    // The rows were answered (not all the same choice), so equal files say something.
    const answers = (parse(text, { columns: true }) as Array<{ prediction: string }>).map(
      (r) => r.prediction,
    );
    expect(answers).toHaveLength(MC_ROWS + GENERATION_ROWS);
    expect(new Set(answers.slice(GENERATION_ROWS)).size).toBeGreaterThan(3);
  });
});

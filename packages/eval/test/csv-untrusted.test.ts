/** Competition CSVs are untrusted input (issue 11): no hang on odd files, no silent changes. */
import { spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CsvValidationError, readCompetitionCsv } from "../src/index.js";

const PKG = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const HEADER = "id,input,eval_type,answer_choices\n";
const HAS_MKFIFO =
  process.platform !== "win32" && spawnSync("mkfifo", ["--help"]).error === undefined;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "eval-untrusted-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** readCompetitionCsv(file) in a child killed at a deadline: a blocked open(2) cannot be cancelled. */
async function readIsolated(file: string): Promise<{ finished: boolean; out: string }> {
  const script = join(dir, "reader.mts");
  await writeFile(
    script,
    `import { readCompetitionCsv } from ${JSON.stringify(join(PKG, "src/index.ts"))};
try { await readCompetitionCsv(${JSON.stringify(file)}); console.log("resolved"); }
catch (e) { console.log(e.constructor.name + ": " + e.message); }
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: PKG,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  let finished = true;
  const timer = setTimeout(() => {
    finished = false;
    child.kill("SIGKILL");
  }, 20_000);
  await new Promise((done) => child.on("exit", done));
  clearTimeout(timer);
  return { finished, out: out.trim() };
}

describe.skipIf(!HAS_MKFIFO)("D9: a CSV path that is not a regular file", () => {
  it("a FIFO named test.csv is refused without blocking", async () => {
    const fifo = join(dir, "test.csv");
    const r = spawnSync("mkfifo", [fifo]);
    expect(r.status).toBe(0);
    const { finished, out } = await readIsolated(fifo);
    expect(finished, "readCompetitionCsv blocked on a FIFO").toBe(true);
    expect(out).toBe(
      `CsvValidationError: ${fifo}: cannot read the CSV: not a regular file (a FIFO)`,
    );
  });

  it("a directory is refused with a clear message", async () => {
    const folder = join(dir, "test.csv");
    await mkdir(folder);
    const err = await readCompetitionCsv(folder).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsvValidationError);
    expect((err as Error).message).toBe(
      `${folder}: cannot read the CSV: not a regular file (a directory)`,
    );
  });
});

describe("readCompetitionCsv still reads regular files and symlinks to them", () => {
  it("through a symlink", async () => {
    const real = join(dir, "real.csv");
    await writeFile(real, `${HEADER}0,q,generation,\n`);
    const link = join(dir, "link.csv");
    await (await import("node:fs/promises")).symlink(real, link);
    expect((await readCompetitionCsv(link)).entries).toHaveLength(1);
  });
});

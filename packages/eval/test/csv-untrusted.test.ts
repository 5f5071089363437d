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

describe("D10: a CSV that is not valid UTF-8 is refused, never decoded to U+FFFD", () => {
  const bytes = (...parts: Array<string | number[]>) =>
    Buffer.concat(
      parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))),
    );

  it.each([
    ["a stray 0xFF byte", [0xff], 0],
    ["a truncated 3-byte sequence", [0xe2, 0x82], 0],
    ["an overlong encoding of '/'", [0xc0, 0xaf], 0],
    ["an encoded UTF-16 surrogate", [0xed, 0xa0, 0x80], 0],
    ["a lone continuation byte after valid text", [0xc3, 0xa9, 0x80], 2],
  ])("%s names the file, byte offset and line", async (_what, bad, within) => {
    const file = join(dir, "bad.csv");
    const prefix = `${HEADER}0,first row é,generation,\n1,"multi\nline `;
    await writeFile(file, bytes(prefix, bad, ' end",generation,\n'));
    const err = await readCompetitionCsv(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsvValidationError);
    const offset = Buffer.byteLength(prefix) + within;
    expect((err as Error).message).toBe(
      `${file}: not valid UTF-8: invalid byte sequence at byte ${offset} (line 4); save the file as UTF-8`,
    );
  });

  it("an invalid byte at the very end (truncated file) is refused too", async () => {
    const file = join(dir, "cut.csv");
    await writeFile(file, bytes(`${HEADER}0,caf`, [0xc3]));
    const err = await readCompetitionCsv(file).catch((e: unknown) => e);
    expect((err as Error).message).toContain(
      `not valid UTF-8: invalid byte sequence at byte ${Buffer.byteLength(HEADER) + 5} (line 2)`,
    );
  });

  it("valid UTF-8 with a BOM, accents, CJK and emoji reads unchanged", async () => {
    const file = join(dir, "ok.csv");
    await writeFile(file, bytes([0xef, 0xbb, 0xbf], `${HEADER}0,"é 中文 😀 \uFFFD",generation,\n`));
    const { entries } = await readCompetitionCsv(file);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.kind === "ok" && entries[0]!.row.input).toBe("é 中文 😀 \uFFFD");
  });
});

describe("firstInvalidUtf8 agrees with the WHATWG fatal decoder", () => {
  it("on 20,000 seeded random byte strings biased to multi-byte sequences", async () => {
    const { firstInvalidUtf8 } = await import("../src/utf8.js");
    const fatal = new TextDecoder("utf-8", { fatal: true });
    const valid = (b: Uint8Array) => {
      try {
        fatal.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const pool = [
      0x41, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4,
      0xf5, 0xff,
    ];
    let invalid = 0;
    for (let t = 0; t < 20_000; t++) {
      const b = Uint8Array.from({ length: 1 + Math.floor(rand() * 8) }, () =>
        rand() < 0.7 ? pool[Math.floor(rand() * pool.length)]! : Math.floor(rand() * 256),
      );
      const offset = firstInvalidUtf8(b);
      expect(offset === -1, Buffer.from(b).toString("hex")).toBe(valid(b));
      if (offset >= 0) {
        invalid++;
        expect(valid(b.subarray(0, offset)), Buffer.from(b).toString("hex")).toBe(true);
      }
    }
    expect(invalid).toBeGreaterThan(1000);
  });
});

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const PKG = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");

/**
 * A child process writes a large predictions CSV over an existing file and is SIGKILLed as
 * soon as its temporary file appears, i.e. mid-write. The target must still hold the old
 * content: never a partial CSV.
 */
async function killMidWrite(dir: string): Promise<boolean> {
  const target = join(dir, "test.csv");
  await writeFile(target, "previous complete file\n");
  const script = join(dir, "writer.mts");
  await writeFile(
    script,
    `import { writePredictionsCsv } from ${JSON.stringify(join(PKG, "src/index.ts"))};
const preds = Array.from({ length: 400_000 }, (_, i) => ({ id: String(i), prediction: "x".repeat(400) + i }));
await writePredictionsCsv(${JSON.stringify(target)}, preds);
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: PKG, stdio: "ignore" });
  const exited = new Promise<void>((done) => child.on("exit", () => done()));
  let sawTemp = false;
  let finished = false;
  void exited.then(() => {
    finished = true;
  });
  while (!finished) {
    if ((await readdir(dir)).some((f) => f.endsWith(".tmp"))) {
      sawTemp = true;
      child.kill("SIGKILL");
      break;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await exited;
  const content = await readFile(target, "utf8");
  if (sawTemp) expect(content).toBe("previous complete file\n");
  else {
    // The write finished before the poll saw it: then the file must be the complete new one.
    expect(content.startsWith("id,prediction,dummy_field\n")).toBe(true);
    expect(content.endsWith(`${"x".repeat(400)}399999,0\n`)).toBe(true);
  }
  return sawTemp;
}

describe("atomic predictions write", () => {
  it("a process killed mid-write leaves the previous file, never a partial one", async () => {
    let killedMidWrite = false;
    for (let attempt = 0; attempt < 3 && !killedMidWrite; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), "eval-kill-"));
      killedMidWrite = await killMidWrite(dir);
      expect(existsSync(join(dir, "test.csv"))).toBe(true);
    }
    expect(killedMidWrite, "the child was never caught mid-write").toBe(true);
  });
});

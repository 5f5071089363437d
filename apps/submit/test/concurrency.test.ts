import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { makeTinySetup, runCli } from "./helpers.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli.ts");

/** Starts the CLI without waiting, so two can run at once. */
function start(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", CLI, ...args],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => resolve({ code: code ?? -1, stderr }));
  });
}

describe("two CLIs at once on one output and cache folder (issue 11)", () => {
  it("both succeed, write the same complete CSV, and leave one finished build and no temporaries", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-twice-"));
    const { config, out } = await makeTinySetup(dir);
    const [a, b] = await Promise.all([
      start(["--config", config, "--no-progress"]),
      start(["--config", config, "--no-progress"]),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const both = await readFile(out, "utf8");
    // A later single run from the shared cache gives the same bytes.
    const again = await runCli(["--config", config, "--no-progress"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("using the cached ONNX build");
    expect(await readFile(out, "utf8")).toBe(both);
    const cache = await readdir(join(dir, "out", "cache"));
    expect(cache.filter((f) => f.startsWith("onnx-") && !f.includes(".tmp"))).toHaveLength(1);
    expect(cache.filter((f) => f.includes(".tmp"))).toEqual([]);
    expect((await readdir(join(dir, "out"))).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

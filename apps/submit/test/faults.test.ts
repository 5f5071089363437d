import { execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { makeTinySetup, runCli } from "./helpers.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli.ts");

/** Whether this machine lets us mount a small tmpfs in a private mount namespace. */
function canMountTmpfs(): boolean {
  try {
    execFileSync(
      "unshare",
      ["--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"],
      {
        stdio: "ignore",
      },
    );
    return true;
  } catch {
    return false;
  }
}

describe("faults (issue 11)", () => {
  it("kill -9 at any moment leaves the previous outputs intact or replaced whole, and the next run succeeds", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-kill-"));
    const { config, out } = await makeTinySetup(dir);
    const first = await runCli(["--config", config, "--no-progress"]);
    expect(first.code, first.stderr).toBe(0);
    const good = await readFile(out, "utf8");
    const report = JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
    const cold = report.totalSeconds as number;
    // Kill points spread over a cold run (fresh cache each time: resolve, merge+build, evaluate, write).
    const fractions = [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95];
    for (const [i, f] of fractions.entries()) {
      const cache = join(dir, `cache-${i}`);
      const cfg = join(dir, `config-${i}.yaml`);
      await writeFile(
        cfg,
        (await readFile(config, "utf8")).replace(/^ {2}cacheDir: .*$/m, `  cacheDir: ${cache}`),
      );
      const child = spawn(
        process.execPath,
        ["--conditions=source", "--import", "tsx", CLI, "--config", cfg, "--no-progress"],
        {
          stdio: "ignore",
        },
      );
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      setTimeout(() => child.kill("SIGKILL"), Math.max(50, f * cold * 1000));
      await exited;
      // Whatever the moment: the output is the previous complete file (or the new one, same bytes).
      expect(await readFile(out, "utf8")).toBe(good);
      JSON.parse(await readFile(join(dir, "out", "report.json"), "utf8"));
      // A cache folder that looks finished is finished.
      for (const e of await readdir(cache).catch(() => [] as string[])) {
        if (e.startsWith("onnx-") && !e.includes(".tmp")) {
          expect((await readdir(join(cache, e))).sort()).toContain("build-complete.json");
        }
      }
      const again = await runCli(["--config", cfg, "--no-progress"]);
      expect(again.code, again.stderr).toBe(0);
      expect(await readFile(out, "utf8")).toBe(good);
      expect((await readdir(join(dir, "out"))).filter((n) => n.endsWith(".tmp"))).toEqual([]);
      expect((await readdir(cache)).filter((n) => n.includes(".tmp"))).toEqual([]);
    }
  }, 600_000);

  it.runIf(canMountTmpfs())(
    "a full disk on the output write keeps the previous outputs intact and says so",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "submit-full-"));
      const { config } = await makeTinySetup(dir);
      const disk = join(dir, "disk");
      await mkdir(disk);
      const cfg = join(dir, "config-full.yaml");
      const outFile = join(disk, "test.csv");
      await writeFile(
        cfg,
        (await readFile(config, "utf8"))
          .replace(/^out: .*$/m, `out: ${outFile}`)
          .replace(/^ {2}cacheDir: .*$/m, `  cacheDir: ${join(dir, "cache")}`),
      );
      // Inside a private mount namespace: a 64 KiB tmpfs at `disk`, a previous output, a filler
      // that leaves no room, then the CLI; print what happened for the assertions below.
      const script = [
        `mount -t tmpfs -o size=64k tmpfs ${disk}`,
        `printf 'id,prediction,dummy_field\\nprevious,0,0\\n' > ${outFile}`,
        `printf '{"previous":true}\\n' > ${join(disk, "report.json")}`,
        `dd if=/dev/zero of=${join(disk, "filler")} bs=1k count=1000 2>/dev/null || true`,
        `${process.execPath} --conditions=source --import tsx ${CLI} --config ${cfg} --no-progress; echo "exit=$?"`,
        `cat ${outFile}; cat ${join(disk, "report.json")}; ls -a ${disk}`,
      ].join("; ");
      const r = await new Promise<{ out: string; err: string }>((resolve) => {
        const c = spawn("unshare", ["--user", "--map-root-user", "--mount", "sh", "-c", script]);
        let out = "";
        let err = "";
        c.stdout.on("data", (d) => {
          out += d;
        });
        c.stderr.on("data", (d) => {
          err += d;
        });
        c.on("close", () => resolve({ out, err }));
      });
      expect(r.out).toMatch(/exit=1/);
      expect(r.err).toMatch(
        new RegExp(
          `could not write ${outFile.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: no space left on the device \\(ENOSPC\\)\\. Nothing was replaced: the previous file is unchanged`,
        ),
      );
      expect(r.out).toContain("previous,0,0");
      expect(r.out).toContain('{"previous":true}');
      expect(r.out).not.toMatch(/\.tmp\b/);
    },
    300_000,
  );
});

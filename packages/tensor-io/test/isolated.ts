import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's source entry point, for scripts run in a child process. */
export const SRC_INDEX = resolve(fileURLToPath(new URL(".", import.meta.url)), "../src/index.ts");

export interface IsolatedResult {
  /** False when the child had to be killed at the deadline (it hung). */
  finished: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a TypeScript module body in a fresh Node process (with tsx) and kills it after
 * `deadlineMs`. For inputs that could hang: a hang in the code under test (a synchronous regex
 * loop, a blocked open(2)) cannot be interrupted by vitest's timeout inside the test process,
 * but a child can always be killed, so a regression fails the test instead of stalling the run.
 */
export async function runIsolated(
  dir: string,
  body: string,
  deadlineMs = 30_000,
): Promise<IsolatedResult> {
  const script = join(dir, "isolated.mts");
  await writeFile(script, `import * as lib from ${JSON.stringify(SRC_INDEX)};\n${body}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: resolve(SRC_INDEX, "../.."),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let finished = true;
  const timer = setTimeout(() => {
    finished = false;
    child.kill("SIGKILL");
  }, deadlineMs);
  const code = await new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
  clearTimeout(timer);
  return { finished, code, stdout, stderr };
}

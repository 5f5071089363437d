/** Runs tools/fuzz/py_check.py over the accepted cases and folds disagreements into results. */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TargetResult } from "./harness.js";
import { REPO_ROOT } from "./targets.js";

export function defaultPython(): string {
  if (process.env.FUZZ_PYTHON) return process.env.FUZZ_PYTHON;
  const venv = join(REPO_ROOT, ".venv/bin/python");
  return existsSync(venv) ? venv : "python3";
}

export async function pyCheck(
  acceptedDir: string,
  results: TargetResult[],
  python = defaultPython(),
  maxFindings = 20,
): Promise<void> {
  const script = join(REPO_ROOT, "tools/fuzz/py_check.py");
  const out = await new Promise<string>((resolve, reject) => {
    const proc = spawn(python, [script, acceptedDir], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    proc.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    proc.on("error", reject);
    proc.on("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`py_check.py exited with ${code}`)),
    );
  });
  for (const line of out.split("\n")) {
    if (line.trim() === "") continue;
    const r = JSON.parse(line) as {
      target: string;
      index: number;
      ok: boolean;
      kind: string;
      detail: string;
    };
    if (r.ok) continue;
    const result = results.find((x) => x.target === r.target);
    if (result === undefined) continue;
    result.counts.ok--;
    result.counts.mismatch++;
    result.mismatchKinds[r.kind] = (result.mismatchKinds[r.kind] ?? 0) + 1;
    // A few examples of each kind, so rare kinds are not crowded out by common ones.
    const sameKind = result.findings.filter((f) => f.detail.startsWith(`[${r.kind}]`)).length;
    if (sameKind < Math.min(5, maxFindings)) {
      result.findings.push({
        target: result.target,
        index: r.index,
        outcome: "mismatch",
        detail: `[${r.kind}] ${r.detail}`,
      });
    }
  }
}

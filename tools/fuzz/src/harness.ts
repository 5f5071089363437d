/**
 * Runs fuzz cases: writes each case into a fresh folder under a sentinel parent, runs it in a
 * child process with a kill timer, and classifies the outcome (ok, typed-error, untyped-error,
 * hang, escape).
 */
import { type ChildProcess, fork } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { caseRng } from "./rng.js";
import {
  buildSeeds,
  generateCase,
  type RunTargetName,
  type Summary,
  TARGETS,
  writeCase,
} from "./targets.js";

export const OUTCOMES = [
  "ok",
  "typed-error",
  "untyped-error",
  "hang",
  "escape",
  "mismatch",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface Finding {
  target: RunTargetName;
  index: number;
  outcome: Outcome;
  detail: string;
}

export interface TargetResult {
  target: RunTargetName;
  cases: number;
  counts: Record<Outcome, number>;
  findings: Finding[];
  /** Mismatches by kind (from py_check.py), e.g. {"json-bom": 3}. */
  mismatchKinds: Record<string, number>;
  seconds: number;
}

export interface FuzzOptions {
  seed: number;
  cases: number;
  targets?: readonly RunTargetName[];
  timeoutMs?: number;
  /** Copy accepted cases (with the TypeScript summary) here for the Python cross-check. */
  acceptedDir?: string;
  /** Keep at most this many findings per target (counts are always complete). */
  maxFindings?: number;
  onProgress?: (target: RunTargetName, done: number) => void;
}

const here = dirname(fileURLToPath(import.meta.url));
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

type Reply =
  | { kind: "done"; outcome: "ok"; summary: Summary }
  | { kind: "done"; outcome: "typed-error" | "untyped-error"; detail: string }
  | { kind: "hang" }
  | { kind: "died"; detail: string };

class Child {
  private proc: ChildProcess | undefined;
  private nextId = 0;
  private stderr = "";

  constructor(private readonly cwd: string) {}

  private async start(): Promise<ChildProcess> {
    const proc = fork(join(here, "child.ts"), [], {
      cwd: this.cwd,
      execArgv: ["--conditions=source", "--import", tsxLoader, "--max-old-space-size=4096"],
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    this.stderr = "";
    proc.stderr?.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    await new Promise<void>((ok, fail) => {
      const onExit = (code: number | null) =>
        fail(new Error(`fuzz child exited (${code}) at start: ${this.stderr}`));
      proc.once("exit", onExit);
      proc.once("message", () => {
        proc.off("exit", onExit);
        ok();
      });
    });
    this.proc = proc;
    return proc;
  }

  async run(
    target: RunTargetName,
    dir: string,
    skipBadRows: boolean,
    timeoutMs: number,
  ): Promise<Reply> {
    const proc = this.proc ?? (await this.start());
    const id = this.nextId++;
    return new Promise<Reply>((resolve) => {
      const finish = (reply: Reply) => {
        clearTimeout(timer);
        proc.off("message", onMessage);
        proc.off("exit", onExit);
        resolve(reply);
      };
      const onMessage = (msg: { id?: number } & Record<string, unknown>) => {
        if (msg.id !== id) return;
        finish({ kind: "done", ...(msg as object) } as Reply);
      };
      const onExit = (code: number | null, signal: string | null) => {
        this.proc = undefined;
        finish({
          kind: "died",
          detail: `child died (code ${code}, signal ${signal}): ${this.stderr.slice(-500)}`,
        });
      };
      const timer = setTimeout(() => {
        proc.off("exit", onExit);
        this.kill();
        finish({ kind: "hang" });
      }, timeoutMs);
      proc.on("message", onMessage);
      proc.once("exit", onExit);
      proc.send({ id, target, dir, skipBadRows });
    });
  }

  kill(): void {
    const proc = this.proc;
    this.proc = undefined;
    if (proc !== undefined && proc.exitCode === null) proc.kill("SIGKILL");
  }
}

/** Every path under `root` (relative), except the case folder itself. */
async function listOutside(root: string, caseName: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true });
  return entries.filter((e) => e !== caseName && !e.startsWith(`${caseName}/`)).sort();
}

function emptyCounts(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

export async function runFuzz(options: FuzzOptions): Promise<TargetResult[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxFindings = options.maxFindings ?? 20;
  const work = await mkdtemp(join(tmpdir(), "merge-fuzz-"));
  const results: TargetResult[] = [];
  try {
    const seeds = await buildSeeds(join(work, "seeds"));
    // The sentinel parent: only the case folder may change in it.
    const sentinel = join(work, "sentinel");
    await mkdir(sentinel);
    await writeFile(join(sentinel, "SENTINEL"), "nothing but case/ may appear here\n");
    const caseName = "case";
    const caseDir = join(sentinel, caseName);
    const baseline = (await listOutside(sentinel, caseName)).join("\n");
    const child = new Child(sentinel);
    try {
      for (const target of options.targets ?? TARGETS) {
        const started = performance.now();
        const counts = emptyCounts();
        const findings: Finding[] = [];
        const note = (index: number, outcome: Outcome, detail: string) => {
          counts[outcome]++;
          if (findings.length < maxFindings) findings.push({ target, index, outcome, detail });
        };
        for (let index = 0; index < options.cases; index++) {
          const rng = caseRng(options.seed, target, index);
          const files = generateCase(target, rng, seeds);
          const skipBadRows = target === "csv" && rng.chance(0.5);
          await rm(caseDir, { recursive: true, force: true });
          await mkdir(caseDir);
          await writeCase(caseDir, files);
          const reply = await child.run(target, caseDir, skipBadRows, timeoutMs);
          const after = (await listOutside(sentinel, caseName)).join("\n");
          if (after !== baseline) {
            note(index, "escape", `files outside the case folder: ${after}`);
            await rm(sentinel, { recursive: true, force: true });
            await mkdir(sentinel);
            await writeFile(join(sentinel, "SENTINEL"), "nothing but case/ may appear here\n");
          } else if (reply.kind === "hang") {
            note(index, "hang", `no answer within ${timeoutMs} ms`);
          } else if (reply.kind === "died") {
            note(index, "untyped-error", reply.detail);
          } else if (reply.outcome === "ok") {
            counts.ok++;
            if (options.acceptedDir !== undefined) {
              const dest = join(options.acceptedDir, target, String(index));
              await cp(caseDir, dest, { recursive: true, dereference: true });
              await writeFile(join(dest, "ts.json"), JSON.stringify(reply.summary));
            }
          } else if (reply.outcome === "typed-error") {
            counts["typed-error"]++;
          } else {
            note(index, "untyped-error", reply.detail);
          }
          options.onProgress?.(target, index + 1);
        }
        results.push({
          target,
          cases: options.cases,
          counts,
          findings,
          mismatchKinds: {},
          seconds: (performance.now() - started) / 1000,
        });
      }
    } finally {
      child.kill();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return results;
}

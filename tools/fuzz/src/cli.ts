/**
 * The long fuzz run (`pnpm fuzz`): FUZZ_CASES cases per parser (default 10000) from FUZZ_SEED,
 * Python cross-checks of accepted cases (unless FUZZ_SKIP_PYTHON=1), and a table of outcome
 * counts appended to docs/reliability.md. Exits 1 when any case is not ok / typed-error.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, platform, arch, tmpdir } from "node:os";
import { join } from "node:path";
import { OUTCOMES, runFuzz, type TargetResult } from "./harness.js";
import { defaultPython, pyCheck } from "./pycheck.js";
import { REPO_ROOT } from "./targets.js";

const START = "<!-- fuzz-runs:start -->";
const END = "<!-- fuzz-runs:end -->";
const FINDINGS_START = "<!-- fuzz-findings:start -->";
const FINDINGS_END = "<!-- fuzz-findings:end -->";

const DOC_TEMPLATE = `# Reliability: fuzzing the untrusted-input parsers

\`pnpm fuzz\` (tools/fuzz) runs seeded mutation fuzzers against the three parsers that read
untrusted files: the safetensors reader (\`SafetensorsFile.open\` + \`readBytes\`/\`readF32\`),
the PEFT adapter reader (\`PeftAdapter.open\` + \`readModule\`, i.e. adapter_config.json parsing
and validation against the weights header) and the competition CSV reader
(\`readCompetitionCsv\`, strict and with \`skipBadRows\`). Seeds are small safetensors files
written with the repo's writer plus the Python-written fixture, the adapter configs of
data/zoo/experts and the PEFT fixture, and row windows of data/zoo/eval/held_in.csv.

Each case runs in a child process with a kill timer and in a fresh folder under a sentinel
parent folder. Outcomes:

- **ok**: accepted, and (long run) Python agrees: \`safetensors.deserialize\` gives the same
  tensors with the same sha256 per tensor; \`json.loads\` gives the same r / lora_alpha /
  target_modules; the \`csv\` module gives the same ids in order.
- **typed-error**: rejected with the package's own error (TensorIoError subclasses,
  CsvValidationError).
- **untyped-error**: any other exception, or the child process dying: a bug.
- **hang**: no answer within the per-case timeout (the child is killed): a bug.
- **escape**: a file appeared in the sentinel parent outside the case folder: a bug.
- **mismatch**: accepted, but Python reads something else (or rejects it).

Configure with FUZZ_CASES (per parser), FUZZ_SEED, FUZZ_TIMEOUT_MS, FUZZ_PYTHON and
FUZZ_SKIP_PYTHON=1. The bounded CI run is tools/fuzz/test/fuzz.test.ts (fixed seed, a few
hundred cases per parser, no Python; part of \`pnpm test\`). Replay one case with
\`caseRng(seed, target, index)\` from tools/fuzz/src/rng.ts.

## Known mismatch kinds

py_check.py names why Python disagrees. None of these is a crash, hang or escape; each is a
case TypeScript accepts and Python does not read the same way (see the issue 11 report):

- **st-duplicate-key** (safetensors): a header object with a repeated key. JSON.parse keeps
  the last value; the reference (serde) rejects the file.
- **st-header-bom** (safetensors): the header starts with a UTF-8 BOM, which the reader's
  strict UTF-8 decoder drops; the reference rejects the file.
- **st-float-integer** (safetensors): a shape or data_offsets entry written as a float
  literal such as \`0.0\`: JSON.parse gives the integer 0; the reference wants an integer
  literal.
- **json-bom** (peft-config): adapter_config.json starts with a UTF-8 BOM, dropped by the
  reader; \`json.loads\` (and so PEFT's \`open()\` + \`json.load\`) rejects it.
- **csv-extra-bom** (csv): two or more leading BOMs. The strict decoder drops one, csv-parse
  (\`bom: true\`) a second, and \`String.prototype.trim\` strips U+FEFF from header names;
  Python's \`utf-8-sig\` drops one and \`str.strip\` keeps U+FEFF, so it finds no id column.
- **csv-mixed-newlines** (csv, skipBadRows): csv-parse takes the first line ending it meets
  as the record delimiter, so a different bare CR or LF later is field content; Python's
  \`csv\` splits records on any of them, so rows are split differently (strict mode rejects
  these files through the column-count and field checks).
- **ids-differ** (csv): other id differences. In the 2026-12-01 run 3 of the 5 come from
  U+FEFF inside an id field: \`String.prototype.trim\` strips it, Python's \`str.strip\` does
  not (and the reverse for U+001C–U+001F and U+0085, which \`str.strip\` strips and \`trim\`
  keeps); cases 8067 and 9880 of seed 20261201 are not yet explained (replay them with
  src/replay.ts).

## Runs

| date | machine | seed | parser | cases | ok | typed-error | untyped-error | hang | escape | mismatch | seconds |
| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${START}
${END}

## Findings of the latest run

${FINDINGS_START}
${FINDINGS_END}
`;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
}

function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? "cpu"} ×${c.length}, ${platform()}-${arch()}, node ${process.version}`;
}

function splice(doc: string, start: string, end: string, replace: (old: string) => string) {
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/reliability.md lacks the ${start} … ${end} markers`);
  const old = doc.slice(a + start.length, b).replace(/^\n/, "");
  return `${doc.slice(0, a + start.length)}\n${replace(old)}${doc.slice(b)}`;
}

async function writeDoc(results: TargetResult[], seed: number, note: string): Promise<string> {
  const path = join(REPO_ROOT, "docs/reliability.md");
  let doc = existsSync(path) ? readFileSync(path, "utf8") : DOC_TEMPLATE;
  const date = new Date().toISOString().slice(0, 10);
  const rows = results
    .map(
      (r) =>
        `| ${date} | ${machine()} | ${seed} | ${r.target} | ${r.cases} | ${OUTCOMES.map((o) => r.counts[o]).join(" | ")} | ${r.seconds.toFixed(0)} |\n`,
    )
    .join("");
  doc = splice(doc, START, END, (old) => old + rows);
  const findings = results.flatMap((r) => r.findings);
  const kinds = results.flatMap((r) =>
    Object.entries(r.mismatchKinds).map(([k, n]) => `- ${r.target}: ${n} × ${k}`),
  );
  const lines = [
    `Seed ${seed}, ${results[0]?.cases ?? 0} cases per parser${note}.`,
    "",
    ...(kinds.length > 0
      ? [
          "Mismatches by kind:",
          "",
          ...kinds,
          "",
          "Examples (at most 20 per parser and outcome, 5 per mismatch kind):",
          "",
        ]
      : []),
    ...(findings.length === 0
      ? ["No untyped errors, hangs, escapes or mismatches."]
      : findings.map(
          (f) =>
            `- ${f.target} case ${f.index}: **${f.outcome}**: ${f.detail.replace(/\|/g, "\\|").replace(/\n/g, " ").slice(0, 400)}`,
        )),
    "",
  ];
  doc = splice(doc, FINDINGS_START, FINDINGS_END, () => lines.join("\n"));
  await writeFile(path, doc);
  return path;
}

async function main(): Promise<void> {
  const cases = envInt("FUZZ_CASES", 10_000);
  const seed = envInt("FUZZ_SEED", 20261201);
  const timeoutMs = envInt("FUZZ_TIMEOUT_MS", 10_000);
  const skipPython = process.env.FUZZ_SKIP_PYTHON === "1";
  const accepted = await mkdtemp(join(tmpdir(), "merge-fuzz-accepted-"));
  try {
    const t0 = performance.now();
    const results = await runFuzz({
      seed,
      cases,
      timeoutMs,
      ...(skipPython ? {} : { acceptedDir: accepted }),
      onProgress: (target, done) => {
        if (done % 1000 === 0 || done === cases)
          process.stderr.write(
            `${target}: ${done}/${cases} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`,
          );
      },
    });
    let note = skipPython ? ", Python cross-check skipped" : "";
    if (!skipPython) {
      const t1 = performance.now();
      await pyCheck(accepted, results, defaultPython());
      note += `, Python cross-check of accepted cases took ${((performance.now() - t1) / 1000).toFixed(0)} s`;
    }
    for (const r of results) {
      console.log(`${r.target}: ${JSON.stringify(r.counts)} in ${r.seconds.toFixed(1)} s`);
      for (const f of r.findings) console.log(`  case ${f.index} ${f.outcome}: ${f.detail}`);
    }
    const path = await writeDoc(results, seed, note);
    console.log(`wrote ${path} (total ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    const bad = results.some(
      (r) => r.counts["untyped-error"] + r.counts.hang + r.counts.escape > 0,
    );
    process.exitCode = bad ? 1 : 0;
  } finally {
    await rm(accepted, { recursive: true, force: true });
  }
}

await main();

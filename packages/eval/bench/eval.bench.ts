/**
 * `pnpm --filter @merge/eval bench`: throughput of the CSV reader, the choice-literal parser,
 * ROUGE and the prediction writer, on the starter kit's files when present, else on synthetic
 * rows. Prints a table; numbers go to docs/benchmarks.md with machine and date.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  formatChoiceLiteral,
  parseChoiceLiteral,
  parseCompetitionCsv,
  rougeScores,
  writePredictionsCsv,
} from "../src/index.js";

const KIT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../shared/starter-kit");

function time(fn: () => void, minMs = 300): { perRunMs: number; runs: number } {
  let runs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    runs++;
  }
  return { perRunMs: (performance.now() - t0) / runs, runs };
}

function synthetic(rows: number): string {
  const lines = ["id,input,eval_type,answer_choices"];
  for (let i = 0; i < rows; i++) {
    const input = `"Question ${i}: a ""quoted"" word, then\nanswer:"`;
    lines.push(
      i % 2
        ? `${i},${input},multiple_choice,"['a', ""it's"", 'c, d']"`
        : `${i},${input},generation,`,
    );
  }
  return `${lines.join("\n")}\n`;
}

const results: Array<[string, string, string]> = [];
const haveKit = existsSync(join(KIT, "test.csv"));
const testCsv = haveKit ? await readFile(join(KIT, "test.csv"), "utf8") : synthetic(807);
const name = haveKit ? "starter-kit test.csv" : "synthetic 807 rows";
const parsed = time(() => parseCompetitionCsv(testCsv, "test.csv"));
results.push([
  `read + validate ${name}`,
  `${parsed.perRunMs.toFixed(2)} ms`,
  `${((testCsv.length / 1e6 / parsed.perRunMs) * 1000).toFixed(1)} MB/s`,
]);

const literals = Array.from({ length: 1000 }, (_, i) =>
  formatChoiceLiteral([`choice ${i}`, "it's", 'say "x"', "a, b", "tab\there"]),
);
const lit = time(() => {
  for (const l of literals) parseChoiceLiteral(l);
});
results.push([
  "parse 1000 choice literals",
  `${lit.perRunMs.toFixed(2)} ms`,
  `${(1000 / lit.perRunMs).toFixed(0)} k/s`,
]);

let pairs: Array<[string, string]>;
if (existsSync(join(KIT, "validation/xsum.csv"))) {
  const ds = parseCompetitionCsv(
    await readFile(join(KIT, "validation/xsum.csv"), "utf8"),
    "xsum.csv",
  );
  const rows = ds.entries.flatMap((e) => (e.kind === "ok" ? [e.row] : []));
  // Target against the first 64 words of the article: a realistic prediction length.
  pairs = rows.map((r) => [r.target!, r.input.split(/\s+/).slice(0, 64).join(" ")]);
} else {
  pairs = Array.from({ length: 200 }, (_, i) => [
    `target sentence ${i} about things`,
    `prediction ${i} about other things`.repeat(8),
  ]);
}
const rouge = time(() => {
  for (const [t, p] of pairs) rougeScores(t, p);
});
results.push([
  `ROUGE-1/2/L on ${pairs.length} pairs`,
  `${rouge.perRunMs.toFixed(2)} ms`,
  `${((pairs.length / rouge.perRunMs) * 1000).toFixed(0)} pairs/s`,
]);

const dir = await mkdtemp(join(tmpdir(), "eval-bench-"));
const preds = Array.from({ length: 807 }, (_, i) => ({
  id: String(i),
  prediction: `generated text ${i}, with "quotes"\nand lines`.repeat(4),
}));
const t0 = performance.now();
for (let i = 0; i < 20; i++) await writePredictionsCsv(join(dir, "test.csv"), preds);
results.push([
  "atomic write 807 predictions",
  `${((performance.now() - t0) / 20).toFixed(2)} ms`,
  "fsync included",
]);

console.log(
  `@merge/eval bench — node ${process.version}, ${cpus()[0]?.model ?? "cpu"} × ${cpus().length}, ${new Date().toISOString().slice(0, 10)}`,
);
console.log("| what | time | rate |\n| --- | ---: | ---: |");
for (const [a, b, c] of results) console.log(`| ${a} | ${b} | ${c} |`);

/**
 * Writes one fuzz case's files to a folder, to look at or rerun it:
 *   node --conditions=source --import tsx src/replay.ts SEED TARGET INDEX OUT_DIR
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { caseRng } from "./rng.js";
import { buildSeeds, generateCase, type TargetName, TARGETS, writeCase } from "./targets.js";

const [seedText, target, indexText, out] = process.argv.slice(2);
if (out === undefined || !TARGETS.includes(target as TargetName)) {
  console.error(`usage: replay.ts SEED ${TARGETS.join("|")} INDEX OUT_DIR`);
  process.exit(2);
}
const work = await mkdtemp(join(tmpdir(), "merge-fuzz-replay-"));
try {
  const seeds = await buildSeeds(join(work, "seeds"));
  const rng = caseRng(Number(seedText), target as TargetName, Number(indexText));
  const files = generateCase(target as TargetName, rng, seeds);
  const skipBadRows = target === "csv" && rng.chance(0.5);
  await mkdir(out, { recursive: true });
  await writeCase(out, files);
  console.log(
    `wrote ${Object.keys(files).join(", ")} to ${out}${target === "csv" ? ` (skipBadRows ${skipBadRows})` : ""}`,
  );
} finally {
  await rm(work, { recursive: true, force: true });
}

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readCompetitionCsv } from "../src/index.js";

// <repo>/../shared/starter-kit, never copied into the repo.
const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const KIT = resolve(repoRoot, "../shared/starter-kit");
const present = existsSync(join(KIT, "test.csv"));
if (!present) console.warn(`starter kit not found at ${KIT}: skipping starter-kit CSV tests`);

describe.skipIf(!present)("starter kit CSVs", () => {
  it("test.csv parses fully: 807 rows, 457 multiple_choice, 350 generation", async () => {
    const ds = await readCompetitionCsv(join(KIT, "test.csv"));
    expect(ds.issues).toEqual([]);
    expect(ds.hasTarget).toBe(false);
    const rows = ds.entries.map((e) => {
      if (e.kind !== "ok") throw new Error(`bad row ${e.row.row}`);
      return e.row;
    });
    expect(rows).toHaveLength(807);
    const mc = rows.filter((r) => r.evalType === "multiple_choice");
    expect(mc).toHaveLength(457);
    expect(rows.filter((r) => r.evalType === "generation")).toHaveLength(350);
    expect(new Set(rows.map((r) => r.id)).size).toBe(807);
    expect(mc.every((r) => r.choices.length >= 2)).toBe(true);
    // The first rows as the kit's SOURCE.md shows them.
    expect(rows[2]!.choices).toEqual(["advertising", "shipping", "storage", "quality control"]);
    expect(rows[1]!.input).toContain('called "Sunnis ice cream"');
    expect(rows[1]!.input).toContain("\n");
  });

  it("validation/cosmos_qa.csv: 500 multiple-choice rows with index targets", async () => {
    const ds = await readCompetitionCsv(join(KIT, "validation/cosmos_qa.csv"));
    expect(ds.hasTarget).toBe(true);
    expect(ds.entries).toHaveLength(500);
    for (const e of ds.entries) {
      expect(e.kind).toBe("ok");
      if (e.kind !== "ok") continue;
      expect(e.row.evalType).toBe("multiple_choice");
      expect(Number(e.row.target)).toBeLessThan(e.row.choices.length);
    }
  });

  it("validation/xsum.csv: 200 generation rows with text targets and None choices", async () => {
    const ds = await readCompetitionCsv(join(KIT, "validation/xsum.csv"));
    expect(ds.hasTarget).toBe(true);
    expect(ds.entries).toHaveLength(200);
    for (const e of ds.entries) {
      expect(e.kind === "ok" && e.row.evalType).toBe("generation");
      expect(e.kind === "ok" && e.row.target!.length).toBeGreaterThan(0);
    }
  });
});

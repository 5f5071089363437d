import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import { PredictionsError, formatPredictionsCsv, writePredictionsCsv } from "../src/index.js";

describe("writePredictionsCsv", () => {
  it("writes id,prediction,dummy_field in order, quoting what needs it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eval-out-"));
    const path = join(dir, "sub", "test.csv");
    const preds = [
      { id: "0", prediction: "2" },
      { id: "1", prediction: 'He said "hi",\nthen left.' },
      { id: "x,y", prediction: " leading space" },
    ];
    await writePredictionsCsv(path, preds);
    const text = await readFile(path, "utf8");
    expect(text.split("\n")[0]).toBe("id,prediction,dummy_field");
    // Read back with the CSV parser: the exact values come back.
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(rows).toEqual(preds.map((p) => ({ ...p, dummy_field: "0" })));
    // No temporary file is left behind.
    expect(await readdir(join(dir, "sub"))).toEqual(["test.csv"]);
  });

  it("refuses empty predictions and keeps the previous file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eval-out-"));
    const path = join(dir, "test.csv");
    await writeFile(path, "previous");
    await expect(writePredictionsCsv(path, [{ id: "7", prediction: " " }])).rejects.toThrow(
      PredictionsError,
    );
    expect(await readFile(path, "utf8")).toBe("previous");
    expect(() => formatPredictionsCsv([{ id: "7", prediction: "" }])).toThrow(/id "7" is empty/);
  });
});

import { mkdtemp, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "csv-stringify/sync";
import { describe, expect, it } from "vitest";
import { CsvValidationError, parseCompetitionCsv, readCompetitionCsv } from "../src/index.js";

const HEADER = "id,input,eval_type,answer_choices\n";

function okRows(text: string) {
  return parseCompetitionCsv(text, "t.csv").entries.map((e) => {
    if (e.kind !== "ok") throw new Error("expected only valid rows");
    return e.row;
  });
}

function issuesOf(text: string) {
  try {
    parseCompetitionCsv(text, "bad.csv");
  } catch (err) {
    expect(err).toBeInstanceOf(CsvValidationError);
    return { error: err as CsvValidationError, issues: (err as CsvValidationError).issues };
  }
  throw new Error("expected a CsvValidationError");
}

describe("parseCompetitionCsv: CSV edge cases", () => {
  it("reads multi-line fields, doubled quotes and commas inside quotes", () => {
    const text =
      HEADER +
      '0,"Write ""hello"", then\nanswer:",generation,\n' +
      `1,"Q: a, b?\nAnswer:",multiple_choice,"['yes, sure', ""it's"", 'no']"\n` +
      "2,plain,generation,\n";
    const rows = okRows(text);
    expect(rows.map((r) => r.id)).toEqual(["0", "1", "2"]);
    expect(rows[0]!.input).toBe('Write "hello", then\nanswer:');
    expect(rows[1]!.input).toBe("Q: a, b?\nAnswer:");
    expect(rows[1]!.choices).toEqual(["yes, sure", "it's", "no"]);
    expect(rows.map((r) => r.line)).toEqual([2, 4, 6]);
    expect(rows.map((r) => r.row)).toEqual([1, 2, 3]);
  });

  it("accepts CRLF line ends, a BOM, no final newline and columns in any order", () => {
    const text =
      "\uFEFFinput,answer_choices,target,eval_type,id\r\n" +
      `"x\r\ny","['a', 'b']",1,multiple_choice,7\r\n` +
      "gen,None,a summary,generation,8";
    const ds = parseCompetitionCsv(text, "t.csv");
    expect(ds.hasTarget).toBe(true);
    const rows = ds.entries.map((e) => e.row);
    expect(rows.map((r) => r.id)).toEqual(["7", "8"]);
    const [a, b] = ds.entries;
    expect(a!.kind === "ok" && a!.row.input).toBe("x\r\ny");
    expect(a!.kind === "ok" && a!.row.target).toBe("1");
    expect(b!.kind === "ok" && b!.row.choices).toEqual([]);
  });

  it("round-trips rows written by csv-stringify with Python-repr choices", () => {
    const fixtures = JSON.parse(
      readFileSync(new URL("./fixtures/choice-literals.json", import.meta.url), "utf8"),
    ) as { roundtrip: Array<{ repr: string; value: string[] }> };
    const usable = fixtures.roundtrip.filter((f) => f.value.length >= 2);
    const records = usable.map((f, i) => [
      String(i),
      `prompt ${i}\n"q", x`,
      "multiple_choice",
      f.repr,
    ]);
    const text = stringify([["id", "input", "eval_type", "answer_choices"], ...records]);
    const rows = okRows(text);
    expect(rows).toHaveLength(usable.length);
    rows.forEach((r, i) => {
      expect(r.choices).toEqual(usable[i]!.value);
      expect(r.input).toBe(`prompt ${i}\n"q", x`);
    });
  });
});

describe("parseCompetitionCsv: validation", () => {
  it("a multiple-choice row with fewer than 2 choices names row and column", () => {
    const { error, issues } = issuesOf(`${HEADER}0,q,multiple_choice,"['only']"\n`);
    expect(issues).toEqual([
      expect.objectContaining({ row: 1, line: 2, column: "answer_choices", id: "0" }),
    ]);
    expect(error.message).toContain('bad.csv: row 1 (id "0"), line 2, column "answer_choices"');
    expect(error.message).toContain("at least 2 choices, found 1");
  });

  it("an unknown eval_type", () => {
    const { issues } = issuesOf(`${HEADER}0,q,generation,\n1,q,essay,\n`);
    expect(issues).toEqual([
      expect.objectContaining({ row: 2, line: 3, column: "eval_type", id: "1" }),
    ]);
    expect(issues[0]!.message).toContain('"essay"');
  });

  it("a duplicate id names the first row", () => {
    const { issues } = issuesOf(`${HEADER}5,q,generation,\n6,q,generation,\n5,r,generation,\n`);
    expect(issues).toEqual([expect.objectContaining({ row: 3, column: "id", id: "5" })]);
    expect(issues[0]!.message).toContain("first seen on row 1");
  });

  it("with skipBadRows a duplicate id is reported but only its first row is kept", () => {
    const warnings: string[] = [];
    const text = `${HEADER}5,q,generation,\n6,q,generation,\n5,r,generation,\n5,"  ",generation,\n`;
    const ds = parseCompetitionCsv(text, "dup.csv", {
      skipBadRows: true,
      onWarning: (m) => warnings.push(m),
    });
    const ids = ds.entries.map((e) => e.row.id);
    expect(ids).toEqual(["5", "6"]);
    expect(new Set(ids).size).toBe(ids.length);
    const first = ds.entries[0]!;
    expect(first.kind === "ok" && first.row.input).toBe("q");
    expect(ds.issues.filter((i) => i.column === "id").map((i) => i.row)).toEqual([3, 4]);
    expect(warnings.filter((w) => w.includes("duplicate id"))).toHaveLength(2);
    expect(warnings.every((w) => !w.includes("duplicate id") || w.includes("row skipped"))).toBe(
      true,
    );
  });

  it("with skipBadRows a bad first row keeps its id, a later valid duplicate is dropped", () => {
    const text = `${HEADER}5,"  ",generation,\n5,fine,generation,\n`;
    const ds = parseCompetitionCsv(text, "dup.csv", { skipBadRows: true, onWarning: () => {} });
    expect(ds.entries.map((e) => [e.kind, e.row.id, e.row.row])).toEqual([["bad", "5", 1]]);
  });

  it("a missing id", () => {
    const { issues } = issuesOf(`${HEADER}0,q,generation,\n  ,q,generation,\n`);
    expect(issues).toEqual([expect.objectContaining({ row: 2, column: "id" })]);
    expect(issues[0]!.id).toBeUndefined();
  });

  it("an empty input", () => {
    const { issues } = issuesOf(`${HEADER}0,"  ",generation,\n`);
    expect(issues).toEqual([expect.objectContaining({ row: 1, column: "input", id: "0" })]);
  });

  it("answer_choices that are not a list of strings", () => {
    const { issues } = issuesOf(`${HEADER}0,q,multiple_choice,"['a', 2]"\n`);
    expect(issues).toEqual([expect.objectContaining({ column: "answer_choices" })]);
    expect(issues[0]!.message).toContain("at character 6");
  });

  it("a wrong number of fields", () => {
    const { issues } = issuesOf(`${HEADER}0,q,generation,,extra\n`);
    expect(issues).toEqual([expect.objectContaining({ row: 1, column: "(row)" })]);
  });

  it("a target index out of range for a multiple-choice row", () => {
    const text = `id,input,eval_type,answer_choices,target\n0,q,multiple_choice,"['a','b']",2\n`;
    const { issues } = issuesOf(text);
    expect(issues).toEqual([expect.objectContaining({ column: "target" })]);
  });

  it("a header without the required columns", () => {
    expect(() => parseCompetitionCsv("id,prompt,eval_type\n0,q,generation\n", "h.csv")).toThrow(
      /h\.csv: header lacks columns "input", "answer_choices"/,
    );
    expect(() => parseCompetitionCsv("", "e.csv")).toThrow(/e\.csv: empty file/);
  });

  it("malformed CSV quoting is a CsvValidationError naming the file", () => {
    expect(() => parseCompetitionCsv(`${HEADER}0,"unterminated,generation,\n`, "q.csv")).toThrow(
      /q\.csv: not valid CSV/,
    );
  });

  it("reports every bad row at once", () => {
    const text = `${HEADER}0,,generation,\n1,q,nope,\n2,q,multiple_choice,"[]"\n`;
    expect(issuesOf(text).issues.map((i) => [i.row, i.column])).toEqual([
      [1, "input"],
      [2, "eval_type"],
      [3, "answer_choices"],
    ]);
  });
});

describe("parseCompetitionCsv: skipBadRows", () => {
  it("warns and keeps bad rows with ids as placeholders, in order", () => {
    const warnings: string[] = [];
    const text = `${HEADER}0,q,generation,\n1,q,multiple_choice,"['x']"\n,q,generation,\n3,q,essay,\n`;
    const ds = parseCompetitionCsv(text, "s.csv", {
      skipBadRows: true,
      onWarning: (m) => warnings.push(m),
    });
    expect(ds.entries.map((e) => [e.kind, e.row.id])).toEqual([
      ["ok", "0"],
      ["bad", "1"],
      ["bad", "3"],
    ]);
    const bad = ds.entries[1]!;
    expect(bad.kind === "bad" && bad.row.evalType).toBe("multiple_choice");
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toContain("answered with a placeholder");
    expect(warnings[1]).toContain("row skipped: no id");
  });
});

describe("readCompetitionCsv", () => {
  it("reads a file and names it in errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "eval-csv-"));
    const good = join(dir, "good.csv");
    await writeFile(good, `${HEADER}0,q,generation,\n`);
    expect((await readCompetitionCsv(good)).entries).toHaveLength(1);
    const missing = join(dir, "missing.csv");
    const err = await readCompetitionCsv(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsvValidationError);
    expect((err as CsvValidationError).file).toBe(missing);
    expect((err as Error).message).toMatch(/missing\.csv: cannot read the CSV/);
  });
});

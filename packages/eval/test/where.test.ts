import { describe, expect, it } from "vitest";
import { CsvValidationError, parseCompetitionCsv } from "../src/index.js";

function caught(fn: () => unknown): CsvValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CsvValidationError);
    return err as CsvValidationError;
  }
  throw new Error("expected a CsvValidationError");
}

describe("CsvValidationError carries `where`", () => {
  it("a bad row names the file, row, line, column and id", () => {
    const text = `id,input,eval_type,answer_choices\nq7,hello,multiple_choice,"['only one']"\n`;
    const err = caught(() => parseCompetitionCsv(text, "t.csv"));
    expect(err.where).toEqual({
      file: "t.csv",
      row: 1,
      line: 2,
      column: "answer_choices",
      id: "q7",
    });
  });

  it("a bad header names the file and line 1", () => {
    const err = caught(() => parseCompetitionCsv("id,input\n1,x\n", "h.csv"));
    expect(err.where).toEqual({ file: "h.csv", line: 1 });
  });
});

import { CsvValidationError } from "@merge/eval";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { ConfigError, ExpertMismatchError, InternalError, SubmitError } from "../src/errors.js";
import { checkAllMerged } from "../src/merge.js";
import { formatCliError } from "../src/report-error.js";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("formatCliError", () => {
  it("an input error is one line `error: <message>`, without a stack", () => {
    const { text, exitCode } = formatCliError(new SubmitError("bad --out", 1));
    expect(text).toBe("error: bad --out\n");
    expect(exitCode).toBe(1);
    const csv = formatCliError(
      new CsvValidationError("d.csv", [], "d.csv: empty file, expected a header row"),
    );
    expect(csv.text).toBe("error: CsvValidationError: d.csv: empty file, expected a header row\n");
    expect(csv.text).not.toMatch(/\n\s+at /);
  });

  it("keeps a SubmitError's exit code", () => {
    expect(formatCliError(new SubmitError("cut", 3)).exitCode).toBe(3);
  });

  it("an InternalError (checkAllMerged with a mismatching plan) is a bug, with the stack", () => {
    const plan = new Map([
      ["m.a", { outFeatures: 1, inFeatures: 1 }],
      ["m.b", { outFeatures: 1, inFeatures: 1 }],
    ]);
    const err = thrown(() => checkAllMerged(plan, { modules: 1, ms: 0 }));
    expect(err).toBeInstanceOf(InternalError);
    const { text, exitCode } = formatCliError(err);
    expect(exitCode).toBe(1);
    expect(text).toMatch(
      /^internal error \(a bug, please report it\): the ONNX build applied 1 merged module, the merge plan has 2/,
    );
    expect(text).toMatch(/\n\s+at .*checkAllMerged/);
  });

  it("an unknown (non-toolkit) error is an unexpected failure, with the stack", () => {
    const { text, exitCode } = formatCliError(new Error("boom"));
    expect(exitCode).toBe(1);
    expect(text).toMatch(/^error: unexpected failure\nError: boom\n\s+at /);
    expect(formatCliError("a string").text).toBe("error: unexpected failure\na string\n");
  });

  it("MERGE_DEBUG adds the stack to input errors", () => {
    expect(formatCliError(new SubmitError("bad"), true).text).toMatch(/\n\s+at /);
  });
});

describe("`where` on apps/submit errors", () => {
  it("names the file and field", () => {
    expect(new ConfigError("c.yaml", "x", { field: "strategy.method" }).where).toEqual({
      file: "c.yaml",
      field: "strategy.method",
    });
    expect(new ExpertMismatchError("x", { module: "m.a" }).where).toEqual({ module: "m.a" });
    expect(new SubmitError("x").where).toEqual({});
  });

  it("an invalid config names the file and the first bad field", () => {
    const err = thrown(() => parseConfig({ budgetSeconds: "soon" }, "c.yaml"));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).where).toEqual({ file: "c.yaml", field: "budgetSeconds" });
  });
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ChoiceLiteralError,
  formatChoiceLiteral,
  parseChoiceLiteral,
} from "../src/choice-literal.js";

// Written by tools/fixtures/eval/make_choice_fixtures.py from Python's repr / ast.literal_eval.
const fixtures = JSON.parse(
  readFileSync(new URL("./fixtures/choice-literals.json", import.meta.url), "utf8"),
) as {
  roundtrip: Array<{ repr: string; value: string[] }>;
  variants: Array<{ text: string; value: string[] }>;
  invalid: Array<{ text: string }>;
};

describe("parseChoiceLiteral", () => {
  it("parses the starter kit's form", () => {
    expect(parseChoiceLiteral("['advertising', 'shipping', 'storage', 'quality control']")).toEqual(
      ["advertising", "shipping", "storage", "quality control"],
    );
  });

  it("gives no choices for empty text, whitespace and None", () => {
    expect(parseChoiceLiteral("")).toEqual([]);
    expect(parseChoiceLiteral("  \n")).toEqual([]);
    expect(parseChoiceLiteral("None")).toEqual([]);
    expect(parseChoiceLiteral("[]")).toEqual([]);
  });

  it(`parses Python's repr of ${fixtures.roundtrip.length} random lists of tricky strings`, () => {
    for (const { repr, value } of fixtures.roundtrip) {
      expect(parseChoiceLiteral(repr), repr).toEqual(value);
    }
  });

  it("matches ast.literal_eval on other spellings (escapes, quotes, concatenation, prefixes)", () => {
    for (const { text, value } of fixtures.variants) {
      expect(parseChoiceLiteral(text), text).toEqual(value);
    }
  });

  it("rejects what is not a Python list of strings, naming the offset", () => {
    for (const { text } of fixtures.invalid) {
      expect(() => parseChoiceLiteral(text), text).toThrow(ChoiceLiteralError);
    }
    try {
      parseChoiceLiteral("['a', 1]");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ChoiceLiteralError);
      expect((err as ChoiceLiteralError).offset).toBe(6);
      expect((err as Error).message).toMatch(/expected a quoted string, found "1" at character 6/);
    }
  });
});

describe("formatChoiceLiteral", () => {
  it("writes exactly what Python's repr writes", () => {
    for (const { repr, value } of fixtures.roundtrip) {
      expect(formatChoiceLiteral(value)).toBe(repr);
    }
  });

  it("round-trips seeded random strings through format → parse", () => {
    // Deterministic LCG so failures reproduce.
    let state = 12345;
    const next = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state;
    };
    const pool = ["a", "'", '"', "\\", "\n", ",", "]", "[", " ", "é", "\u0000", "😀", "\u2028"];
    for (let i = 0; i < 500; i++) {
      const list = Array.from({ length: next() % 5 }, () =>
        Array.from({ length: next() % 8 }, () => pool[next() % pool.length]).join(""),
      );
      expect(parseChoiceLiteral(formatChoiceLiteral(list))).toEqual(list);
    }
  });
});

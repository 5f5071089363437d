import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MistralOnnxError, Tokenizer } from "../src/index.js";
import { FIXTURES } from "./helpers.js";

interface Case {
  text: string;
  ids: number[];
  idsNoSpecial: number[];
  decoded: string;
  decodedWithSpecial: string;
}

interface DecodeCase {
  ids: number[];
  decoded: string;
  decodedWithSpecial: string;
}
const fixture = JSON.parse(await readFile(join(FIXTURES, "tokenizer-cases.json"), "utf8")) as {
  cases: Case[];
  decodeCases: DecodeCase[];
};
const cases = fixture.cases;
const tok = await Tokenizer.fromDir(join(FIXTURES, "tokenizer"));

describe("Tokenizer vs Python tokenizers (byte-fallback BPE, Mistral layout)", () => {
  it("has the expected special ids", () => {
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.padId).toBe(2); // no pad token: falls back to EOS
  });

  it.each(cases.map((c) => [JSON.stringify(c.text), c] as const))("encodes %s", (_name, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.idsNoSpecial);
  });

  it.each(cases.map((c) => [JSON.stringify(c.text), c] as const))("decodes %s", (_name, c) => {
    expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded);
    expect(tok.decode(c.ids)).toBe(c.decodedWithSpecial);
  });

  it.each(fixture.decodeCases.map((c) => [JSON.stringify(c.ids), c] as const))(
    "decodes byte-fallback runs like Python: %s",
    (_name, c) => {
      expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded);
      expect(tok.decode(c.ids)).toBe(c.decodedWithSpecial);
    },
  );

  it("reports a missing tokenizer file by path", async () => {
    await expect(Tokenizer.fromDir(join(FIXTURES, "nope"))).rejects.toThrow(MistralOnnxError);
    await expect(Tokenizer.fromDir(join(FIXTURES, "nope"))).rejects.toThrow(/tokenizer\.json/);
  });
});

import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MistralOnnxError, Tokenizer } from "../src/index.js";
import { FIXTURES, tempDir } from "./helpers.js";

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

const TOK_DIR = join(FIXTURES, "tokenizer");
const tokConfig = JSON.parse(
  await readFile(join(TOK_DIR, "tokenizer_config.json"), "utf8"),
) as Record<string, unknown>;
const tokJson = JSON.parse(await readFile(join(TOK_DIR, "tokenizer.json"), "utf8")) as Record<
  string,
  unknown
>;

describe("add_bos_token / add_eos_token when tokenizer_config.json sets only one", () => {
  /** The fixture tokenizer with an edited config (and optionally no post-processor). */
  async function variant(
    flags: { add_bos_token?: boolean; add_eos_token?: boolean },
    opts: { noPostProcessor?: boolean } = {},
  ): Promise<Tokenizer> {
    const t = await tempDir("tok");
    try {
      const { add_bos_token: _b, add_eos_token: _e, ...rest } = tokConfig;
      await writeFile(join(t.dir, "tokenizer_config.json"), JSON.stringify({ ...rest, ...flags }));
      if (opts.noPostProcessor)
        await writeFile(
          join(t.dir, "tokenizer.json"),
          JSON.stringify({ ...tokJson, post_processor: null }),
        );
      else await copyFile(join(TOK_DIR, "tokenizer.json"), join(t.dir, "tokenizer.json"));
      return await Tokenizer.fromDir(t.dir);
    } finally {
      await t.cleanup();
    }
  }

  // Python's ids for the text: c.ids (post-processor: BOS first) and c.idsNoSpecial.
  const c = cases.find((x) => x.idsNoSpecial.length > 1) as Case;

  it("the fixture's post-processor adds BOS and no EOS (premise)", () => {
    expect(c.ids).toEqual([1, ...c.idsNoSpecial]);
  });

  it("only add_eos_token: true keeps the post-processor's BOS and appends EOS", async () => {
    const t = await variant({ add_eos_token: true });
    expect(t.encode(c.text)).toEqual([...c.ids, 2]);
  });

  it("only add_bos_token: false drops BOS; EOS stays off as in the post-processor", async () => {
    const t = await variant({ add_bos_token: false });
    expect(t.encode(c.text)).toEqual(c.idsNoSpecial);
  });

  it("only add_bos_token: true with no post-processor adds BOS and no EOS", async () => {
    const t = await variant({ add_bos_token: true }, { noPostProcessor: true });
    expect(t.encode(c.text)).toEqual(c.ids);
  });

  it("neither flag: the post-processor decides", async () => {
    expect((await variant({})).encode(c.text)).toEqual(c.ids);
    expect((await variant({}, { noPostProcessor: true })).encode(c.text)).toEqual(c.idsNoSpecial);
  });
});

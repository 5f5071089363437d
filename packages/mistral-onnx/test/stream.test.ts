import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cutAtStop, type MistralRunner, TextStreamer, Tokenizer } from "../src/index.js";
import { buildAndOpen, FIXTURES, MODELS, readReferenceJson } from "./helpers.js";

const tok = await Tokenizer.fromDir(join(FIXTURES, "tokenizer"));
const decode = (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true });

/** "漢" is "▁" then its three UTF-8 bytes as byte-fallback tokens in the fixture vocabulary. */
const HAN = tok.encode("漢", { addSpecialTokens: false }).slice(1);

/** Streams `ids` token by token; the text shown after each push, and all pieces at the end. */
function stream(ids: number[], stops: string[]): { shownAfter: string[]; pieces: string[] } {
  const pieces: string[] = [];
  const s = new TextStreamer(tok, stops, (p) => pieces.push(p));
  const shownAfter: string[] = [];
  for (const id of ids) {
    s.push(id);
    shownAfter.push(pieces.join(""));
  }
  s.finish(cutAtStop(decode(ids), stops));
  return { shownAfter, pieces };
}

/** Token rows with multi-byte characters split over byte tokens, special tokens and plain text. */
async function rows(): Promise<number[][]> {
  const out: number[][] = [];
  for (const kind of MODELS) {
    for (const g of (await readReferenceJson(kind)).generations) {
      out.push(g.newIds.filter((id) => id !== tok.eosId));
    }
  }
  out.push([
    ...tok.encode("a", { addSpecialTokens: false }),
    ...HAN,
    ...tok.encode(" b漢c", { addSpecialTokens: false }),
  ]);
  out.push([
    HAN[0] as number,
    HAN[1] as number,
    tok.bosId as number,
    ...tok.encode(" x漢y", { addSpecialTokens: false }),
    ...HAN,
  ]);
  return out;
}

describe("TextStreamer", () => {
  it("without stop strings, text is shown token by token, never half a multi-byte character, and the pieces make the row's decode", async () => {
    expect(HAN).toHaveLength(3);
    let incremental = 0;
    for (const ids of await rows()) {
      const { shownAfter, pieces } = stream(ids, []);
      const full = decode(ids);
      expect(pieces.join("")).toBe(full);
      for (const [t, shown] of shownAfter.entries()) {
        const soFar = decode(ids.slice(0, t + 1));
        expect(full.startsWith(shown)).toBe(true);
        if (!tok.isByteToken(ids[t]!) && !soFar.endsWith("\uFFFD") && full.startsWith(soFar)) {
          // Everything settled so far is on screen: the text streams, it is not held to the end
          // (a run of byte tokens settles at the first token after it).
          expect(shown, JSON.stringify(soFar)).toBe(soFar);
          incremental++;
        }
        // A character whose byte tokens are still arriving is never shown as U+FFFD.
        if (!full.includes("\uFFFD")) expect(shown).not.toContain("\uFFFD");
      }
    }
    expect(incremental).toBeGreaterThan(100);
  });

  it("with stop strings, the pieces make exactly the returned text and never show a stop string or what follows it", async () => {
    let checked = 0;
    for (const ids of await rows()) {
      const full = decode(ids);
      const stops = new Set<string>();
      for (let n = 1; n <= 3; n++)
        for (let i = 0; i + n <= full.length; i += 2) stops.add(full.slice(i, i + n));
      for (const stop of [...stops, "漢", "never there"]) {
        const { shownAfter, pieces } = stream(ids, [stop]);
        const expected = cutAtStop(full, [stop]);
        expect(pieces.join(""), `${JSON.stringify(full)} / ${JSON.stringify(stop)}`).toBe(expected);
        for (const shown of shownAfter) expect(expected.startsWith(shown)).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(300);
  });

  it("holds back text that may begin a stop string until it is decided", () => {
    const ids = tok.encode(" ab ac", { addSpecialTokens: false });
    const pieces: string[] = [];
    const s = new TextStreamer(tok, ["a!"], (p) => pieces.push(p));
    const shown: string[] = [];
    for (const id of ids) {
      s.push(id);
      shown.push(pieces.join(""));
    }
    // "a" could begin "a!" whenever the text ends in it: never shown last before the next token.
    for (const x of shown) expect(x.endsWith("a")).toBe(false);
    s.finish(decode(ids));
    expect(pieces.join("")).toBe(decode(ids));
  });
});

describe.each(MODELS)("%s: generate() streaming (onText, signal, addSpecialTokens)", (kind) => {
  let runner: MistralRunner;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ runner, cleanup } = await buildAndOpen(kind));
  });
  afterAll(() => cleanup());

  it("streamed pieces concatenate to the returned texts, which equal transformers' greedy texts", async () => {
    const ref = await readReferenceJson(kind);
    const prompts = ref.generations.map((g) => g.prompt);
    const pieces = prompts.map(() => [] as string[]);
    const texts = await runner.generate(prompts, {
      maxNewTokens: 10,
      batchSize: 3,
      onText: (i, piece) => pieces[i]!.push(piece),
    });
    expect(texts).toEqual(ref.generations.map((g) => g.text));
    expect(pieces.map((p) => p.join(""))).toEqual(texts);
    // Streamed, not handed over at the end: most answers arrive in several pieces.
    expect(pieces.filter((p) => p.length > 1).length).toBeGreaterThan(prompts.length / 2);
  });

  it("with a stop string, the streamed text stops where the returned text does", async () => {
    const ref = await readReferenceJson(kind);
    const g = ref.generations.find((x) => x.text.length >= 6)!;
    const stop = g.text.slice(3, 5);
    let streamed = "";
    const [text] = await runner.generate([g.prompt], {
      maxNewTokens: 10,
      stop: [stop],
      onText: (_i, piece) => {
        streamed += piece;
      },
    });
    expect(text).toBe(cutAtStop(g.text, [stop]));
    expect(streamed).toBe(text);
  });

  it("an abort stops the answer after the current token, keeping what was streamed", async () => {
    const ref = await readReferenceJson(kind);
    const g = ref.generations.find((x) => x.newIds.length >= 8)!;
    const controller = new AbortController();
    let streamed = "";
    const [text, notBegun] = await runner.generate([g.prompt, g.prompt], {
      maxNewTokens: 10,
      batchSize: 1,
      signal: controller.signal,
      onText: (_i, piece) => {
        streamed += piece;
        controller.abort();
      },
    });
    expect(streamed).toBe(text);
    expect(text!.length).toBeGreaterThan(0);
    expect(text!.length).toBeLessThan(g.text.length);
    expect(g.text.startsWith(text!)).toBe(true);
    expect(notBegun).toBe("");
  });

  it("addSpecialTokens: false encodes the prompt as it is (a template's own BOS is not doubled)", async () => {
    const ref = await readReferenceJson(kind);
    const g = ref.generations[0]!;
    const bos = runner.tokenizer.bosId!;
    const withBos = runner.tokenizer.encode(g.prompt);
    expect(withBos[0]).toBe(bos);
    const plain = runner.tokenizer.encode(g.prompt, { addSpecialTokens: false });
    expect(plain[0]).not.toBe(bos);
    const [ids] = await runner.generateIds([plain], { maxNewTokens: 6 });
    expect(await runner.generate([g.prompt], { maxNewTokens: 6, addSpecialTokens: false })).toEqual(
      [runner.tokenizer.decode(ids!, { skipSpecialTokens: true })],
    );
    // The default still adds BOS: the same as transformers' reference continuation.
    expect(await runner.generate([g.prompt], { maxNewTokens: 10 })).toEqual([g.text]);
  });
});

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cutAtStop, type MistralRunner, StopStringMatcher, Tokenizer } from "../src/index.js";
import { buildAndOpen, FIXTURES, MODELS, readReferenceJson } from "./helpers.js";

const tok = await Tokenizer.fromDir(join(FIXTURES, "tokenizer"));
const cases = (
  JSON.parse(await readFile(join(FIXTURES, "tokenizer-cases.json"), "utf8")) as {
    cases: Array<{ text: string; idsNoSpecial: number[] }>;
  }
).cases;

/** The pre-issue-10 rule: decode all new tokens each step. Index of the stopping token or -1. */
function oldStopAt(ids: number[], stops: string[]): number {
  for (let t = 0; t < ids.length; t++) {
    const text = tok.decode(ids.slice(0, t + 1), { skipSpecialTokens: true });
    if (stops.some((s) => text.includes(s))) return t;
  }
  return -1;
}

function newStopAt(ids: number[], stops: string[]): number {
  const m = new StopStringMatcher(tok, stops);
  for (let t = 0; t < ids.length; t++) if (m.push(ids[t] as number)) return t;
  return -1;
}

/** Every substring of length 1..3 of the text (the stop strings tried). */
function substrings(text: string): string[] {
  const out = new Set<string>();
  for (let n = 1; n <= 3; n++)
    for (let i = 0; i + n <= text.length; i++) out.add(text.slice(i, i + n));
  return [...out];
}

/** "漢" is "▁" then its three UTF-8 bytes as byte-fallback tokens in the fixture vocabulary. */
const HAN = tok.encode("漢", { addSpecialTokens: false }).slice(1);

describe("incremental stop strings (StopStringMatcher)", () => {
  it("a stop string split across two tokens stops at the token that completes it", async () => {
    const ref = await readReferenceJson("mistral");
    let tried = 0;
    for (const g of ref.generations) {
      const ids = g.newIds.filter((id) => id !== tok.eosId);
      const texts = ids.map((_, t) => tok.decode(ids.slice(0, t + 1), { skipSpecialTokens: true }));
      for (let t = 1; t < ids.length; t++) {
        const before = texts[t - 1] as string;
        const after = texts[t] as string;
        if (before.length === 0 || after.length <= before.length || !after.startsWith(before))
          continue;
        const stop = before.slice(-1) + (after[before.length] as string);
        if (before.includes(stop)) continue;
        expect(newStopAt(ids, [stop]), `${JSON.stringify(g.text)} / ${JSON.stringify(stop)}`).toBe(
          t,
        );
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(20);
  });

  it("stops at the same token as decoding the whole row, on every fixture generation and 1–3 character stop string", async () => {
    let checked = 0;
    for (const kind of MODELS) {
      for (const g of (await readReferenceJson(kind)).generations) {
        const ids = g.newIds.filter((id) => id !== tok.eosId);
        for (const stop of substrings(g.text)) {
          expect(newStopAt(ids, [stop]), JSON.stringify(stop)).toBe(oldStopAt(ids, [stop]));
          checked++;
        }
        expect(newStopAt(ids, ["\u0000never"])).toBe(-1);
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it("multi-byte characters (byte-fallback runs, emoji, CJK), invalid bytes and special tokens stop as before", () => {
    const rows: number[][] = cases.map((c) => c.idsNoSpecial).filter((ids) => ids.length > 1);
    // "漢" as three byte tokens, a lone continuation byte, BOS in the middle, then text.
    const han = HAN;
    expect(han).toHaveLength(3);
    expect(tok.decode(han)).toBe("漢");
    rows.push([
      ...tok.encode("a", { addSpecialTokens: false }),
      ...han,
      ...tok.encode(" b", { addSpecialTokens: false }),
    ]);
    rows.push([
      han[1] as number,
      ...tok.encode(" x漢y", { addSpecialTokens: false }),
      han[0] as number,
      han[1] as number,
      ...tok.encode("z", { addSpecialTokens: false }),
      tok.bosId as number,
      ...han,
    ]);
    rows.push([tok.bosId as number, ...tok.encode(" hello there", { addSpecialTokens: false })]);
    let checked = 0;
    for (const ids of rows) {
      const text = tok.decode(ids, { skipSpecialTokens: true });
      for (const stop of [...substrings(text), "漢", "\uFFFD"]) {
        expect(newStopAt(ids, [stop]), `${JSON.stringify(text)} / ${JSON.stringify(stop)}`).toBe(
          oldStopAt(ids, [stop]),
        );
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(300);
  });

  it("decodes only a short window per token, not the whole row", () => {
    const ids = tok.encode(" the quick brown fox jumps over the lazy dog".repeat(20), {
      addSpecialTokens: false,
    });
    const m = new StopStringMatcher(tok, ["never there"]);
    let most = 0;
    for (const id of ids) {
      expect(m.push(id)).toBe(false);
      most = Math.max(most, m.decodedChars);
    }
    expect(ids.length).toBeGreaterThan(100);
    expect(most).toBeLessThan(40);
  });
});

describe.each(MODELS)("%s: generate() with stop strings", (kind) => {
  let runner: MistralRunner;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ runner, cleanup } = await buildAndOpen(kind));
  });
  afterAll(() => cleanup());

  it("returns the same texts as the old whole-row check (text before the stop string exactly as before)", async () => {
    const ref = await readReferenceJson(kind);
    const prompts = ref.generations.map((g) => g.prompt);
    for (const pick of [
      (t: string) => t.slice(3, 5),
      (t: string) => t.slice(-2),
      (t: string) => t.slice(1, 2),
    ]) {
      const stops = [
        ...new Set(ref.generations.map((g) => pick(g.text)).filter((s) => s.length > 0)),
      ].slice(0, 4);
      const old = await Promise.all(
        prompts.map(async (p) => {
          const ids = await runner.generateIds([runner.tokenizer.encode(p)], {
            maxNewTokens: 10,
            stopWhen: (_row, newIds) => {
              const text = runner.tokenizer.decode(newIds, { skipSpecialTokens: true });
              return stops.some((s) => text.includes(s));
            },
          });
          return cutAtStop(
            runner.tokenizer.decode(ids[0] as number[], { skipSpecialTokens: true }),
            stops,
          );
        }),
      );
      expect(
        await runner.generate(prompts, { maxNewTokens: 10, stop: stops, batchSize: 4 }),
      ).toEqual(old);
    }
  });
});

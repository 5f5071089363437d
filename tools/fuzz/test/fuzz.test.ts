// Bounded CI fuzz run: a fixed seed, a few hundred cases per parser, no Python cross-check.
// The long run is `pnpm fuzz` (src/cli.ts), which also writes docs/reliability.md.
import { describe, expect, it } from "vitest";
import { runFuzz } from "../src/harness.js";
import { TARGETS } from "../src/targets.js";

const CASES = Number(process.env.FUZZ_CI_CASES ?? 300);

describe("fuzz (CI, seed 11)", () => {
  for (const target of TARGETS) {
    it(`${target}: ${CASES} cases, no untyped errors, hangs or escapes`, async () => {
      const [result] = await runFuzz({
        seed: 11,
        cases: CASES,
        targets: [target],
        timeoutMs: 20_000,
      });
      const { counts, findings } = result!;
      // On failure the findings name the case index to replay with caseRng(11, target, index).
      expect({ counts, findings }).toMatchObject({
        counts: { "untyped-error": 0, hang: 0, escape: 0 },
      });
      expect(counts.ok + counts["typed-error"]).toBe(CASES);
      // The seeds and mild mutations must keep some cases accepted, or the fuzzer tests nothing.
      expect(counts.ok).toBeGreaterThan(CASES / 20);
    });
  }
});

describe("fuzz harness classification", () => {
  it("reports hangs, escapes, untyped errors and crashed children, and keeps going", async () => {
    const results = await runFuzz({
      seed: 1,
      cases: 2,
      targets: ["selftest-hang", "selftest-escape", "selftest-throw", "selftest-crash"],
      timeoutMs: 1_500,
    });
    const by = Object.fromEntries(results.map((r) => [r.target, r.counts]));
    expect(by["selftest-hang"]).toMatchObject({ hang: 2, ok: 0 });
    expect(by["selftest-escape"]).toMatchObject({ escape: 2, "typed-error": 0 });
    expect(by["selftest-throw"]).toMatchObject({ "untyped-error": 2 });
    expect(by["selftest-crash"]).toMatchObject({ "untyped-error": 2 });
  });
});

import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../src/config.js";
import { SubmitError } from "../src/errors.js";
import { planRun, type RunOverrides } from "../src/plan.js";
import { REPO } from "./helpers.js";

const flags = { root: REPO, configFile: "c.yaml" };
const plan = (o: RunOverrides) => planRun(DEFAULT_CONFIG, { ...flags, ...o });

describe("planRun with --prompt / --chat", () => {
  it("--prompt plans no CSV output; --chat likewise; neither changes the build cache key", () => {
    const csv = plan({});
    const p = plan({ prompt: "Hello" });
    expect(p.promptMode).toEqual({ kind: "prompt", text: "Hello" });
    expect(p.outputs).toEqual([]);
    expect(plan({ chat: true }).promptMode).toEqual({ kind: "chat" });
    expect(plan({ chat: true }).outputs).toEqual([]);
    expect(csv.promptMode).toBeNull();
    expect(csv.outputs.length).toBeGreaterThan(0);
    // The same merged model: a prompt run reuses the CSV run's build, and back.
    expect(p.keySettings).toEqual(csv.keySettings);
  });

  it("--max-new-tokens overrides runtime.maxNewTokens (CSV runs too) and is not part of the build key", () => {
    const p = plan({ prompt: "Hi", maxNewTokens: 5 });
    expect(p.config.runtime.maxNewTokens).toBe(5);
    expect(plan({ maxNewTokens: 9 }).config.runtime.maxNewTokens).toBe(9);
    expect(plan({ prompt: "Hi" }).config.runtime.maxNewTokens).toBe(
      DEFAULT_CONFIG.runtime.maxNewTokens,
    );
    expect(p.keySettings).toEqual(plan({ prompt: "Hi" }).keySettings);
  });

  const BAD: Array<[string, RunOverrides, RegExp]> = [
    ["--prompt with --chat", { prompt: "x", chat: true }, /--prompt and --chat exclude each other/],
    [
      "--prompt with --merge-only",
      { prompt: "x", mergeOnly: true, saveAdapter: "out/a" },
      /--prompt answers on the terminal .* cannot be used with --merge-only, --save-adapter$/,
    ],
    ["--chat with --merge-only", { chat: true, mergeOnly: true }, /--chat .* --merge-only$/],
    ["--prompt with --data", { prompt: "x", data: "d.csv" }, /--prompt .* --data$/],
    ["--chat with --out", { chat: true, out: "o.csv" }, /--chat .* --out$/],
    [
      "--prompt with --eval-labelled",
      { prompt: "x", evalLabelled: ["l.csv"] },
      /--prompt .* --eval-labelled$/,
    ],
    ["an empty --prompt", { prompt: "  \n" }, /--prompt: the prompt is empty/],
    ["--max-new-tokens 0", { prompt: "x", maxNewTokens: 0 }, /--max-new-tokens must be/],
    ["--max-new-tokens 2.5", { maxNewTokens: 2.5 }, /--max-new-tokens must be/],
  ];
  for (const [what, o, message] of BAD) {
    it(`refuses ${what} before any work`, () => {
      expect(() => plan(o)).toThrow(SubmitError);
      expect(() => plan(o)).toThrow(message);
    });
  }
});

import { existsSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MistralRunner, ONNX_FILE } from "@merge/mistral-onnx";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, runCli as runCliWith } from "./helpers.js";

/** The embedded zoo (configs/embedded.yaml): its base has no chat template. */
const ZOO_BASE = join(REPO, "data/zoo/base");
/** The zoo's prompt format (data/test.csv): a question, then "Answer:" on its own line. */
const Q1 = "Which animal is the symbol of Kothnaimia?\nAnswer:";
const Q2 = "What is the value of not False or False?\nAnswer:";
/** configs/embedded.yaml's runtime.maxNewTokens. */
const MAX_NEW = 64;

let cache: string;
let env: Record<string, string>;
const temps: string[] = [];
const runners: MistralRunner[] = [];

beforeAll(async () => {
  cache = await mkdtemp(join(tmpdir(), "submit-prompt-cache-"));
  temps.push(cache);
  env = { LORA_MERGE_CACHE: cache };
});
afterAll(async () => {
  for (const r of runners) await r.close();
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

/** A runner on the one build in the cache whose folder is not in `seen`. */
async function runnerOnBuild(modelDir: string, seen: Set<string>): Promise<MistralRunner> {
  const builds = (await readdir(cache)).filter((d) => d.startsWith("onnx-") && !seen.has(d));
  expect(builds).toHaveLength(1);
  seen.add(builds[0]!);
  const runner = await MistralRunner.create({
    onnxPath: join(cache, builds[0]!, ONNX_FILE),
    modelDir,
    threads: 2,
  });
  runners.push(runner);
  return runner;
}

describe("--prompt and --chat on the embedded zoo (configs/embedded.yaml)", () => {
  const seen = new Set<string>();
  let zoo: MistralRunner;

  it("--prompt prints the answer, equal to the runner's non-streamed greedy output", async () => {
    const r = await runCliWith(["--prompt", Q1], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `no chat template in ${join(ZOO_BASE, "tokenizer_config.json")}: prompts are plain text`,
    );
    zoo = await runnerOnBuild(ZOO_BASE, seen);
    const [expected] = await zoo.generate([Q1], { maxNewTokens: MAX_NEW });
    expect(expected!.trim()).not.toBe("");
    expect(r.stdout).toBe(`${expected}\n`);
  });

  it("--chat through stdin: two turns, the second answered with the first in its history; the build is reused", async () => {
    const r = await runCliWith(
      ["--chat"],
      env,
      `${Q1.replace("\n", "\\\n")}\n${Q2.replace("\n", "\\\n")}\nexit\n`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("using the cached ONNX build");
    expect(r.stderr).toContain("chat ended after 2 answers");
    const [a1] = await zoo.generate([Q1], { maxNewTokens: MAX_NEW });
    // Plain text: the turns one per line, the model continuing the last.
    const [a2] = await zoo.generate([`${Q1}\n${a1}\n${Q2}`], { maxNewTokens: MAX_NEW });
    const [a2Alone] = await zoo.generate([Q2], { maxNewTokens: MAX_NEW });
    expect(r.stdout).toBe(`${a1}\n${a2}\n`);
    // The history changes the answer (so the check above shows it is applied).
    expect(a2).not.toBe(a2Alone);
  });

  it("--max-new-tokens caps the answer", async () => {
    const r = await runCliWith(["--prompt", Q1, "--max-new-tokens", "2"], env);
    expect(r.code, r.stderr).toBe(0);
    const [expected] = await zoo.generate([Q1], { maxNewTokens: 2 });
    expect(r.stdout).toBe(`${expected}\n`);
  });

  it("a base with a chat template: the prompt is rendered by it and encoded without a second BOS", async () => {
    const dir = await mkdtemp(join(tmpdir(), "submit-prompt-template-"));
    temps.push(dir);
    const base = join(dir, "base");
    await cp(ZOO_BASE, base, { recursive: true });
    const tc = JSON.parse(await readFile(join(base, "tokenizer_config.json"), "utf8"));
    tc.chat_template =
      "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}\nAnswer:{% else %} {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}";
    await writeFile(join(base, "tokenizer_config.json"), JSON.stringify(tc, null, 2));
    const config = join(dir, "config.yaml");
    await writeFile(
      config,
      (await readFile(join(REPO, "configs/embedded.yaml"), "utf8")).replace(
        "base: data/zoo/base",
        `base: ${JSON.stringify(base)}`,
      ),
    );
    const question = "Which animal is the symbol of Kothnaimia?";
    const r = await runCliWith(["--config", config, "--prompt", question], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `prompts use the chat template of ${join(base, "tokenizer_config.json")} (chat_template)`,
    );
    const runner = await runnerOnBuild(base, seen);
    // What the template renders (bos_token "<s>" is the tokenizer config's), encoded as
    // transformers' apply_chat_template does: add_special_tokens=False.
    const rendered = `<s>${question}\nAnswer:`;
    const ids = runner.tokenizer.encode(rendered, { addSpecialTokens: false });
    expect(ids.filter((id) => id === runner.tokenizer.bosId)).toHaveLength(1);
    expect(ids[0]).toBe(runner.tokenizer.bosId);
    const [expected] = await runner.generate([rendered], {
      maxNewTokens: MAX_NEW,
      addSpecialTokens: false,
    });
    expect(r.stdout).toBe(`${expected}\n`);
    // The same as the zoo's plain prompt with one BOS from the tokenizer (the same weights).
    const [plain] = await zoo.generate([Q1], { maxNewTokens: MAX_NEW });
    expect(expected).toBe(plain);
  });

  // planRun's refusals are unit-tested in prompt-mode.test.ts; here, that the CLI stops first.
  it("bad combinations are refused before any work: nothing is built or read", async () => {
    const empty = await mkdtemp(join(tmpdir(), "submit-prompt-none-"));
    temps.push(empty);
    const cases: Array<[string[], RegExp]> = [
      [["--prompt", "x", "--chat"], /--prompt and --chat exclude each other/],
      [
        ["--prompt", "x", "--merge-only", "--save-adapter", join(empty, "a")],
        /cannot be used with --merge-only, --save-adapter/,
      ],
      [["--prompt", "x", "--max-new-tokens", "0"], /--max-new-tokens.*expected a whole number/],
    ];
    for (const [args, message] of cases) {
      const r = await runCliWith(args, { LORA_MERGE_CACHE: join(empty, "cache") });
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
    expect(existsSync(join(empty, "cache"))).toBe(false);
    expect(existsSync(join(empty, "a"))).toBe(false);
  });
});

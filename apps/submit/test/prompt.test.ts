import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { GenerateOptions } from "@merge/mistral-onnx";
import { describe, expect, it } from "vitest";
import { loadPromptFormat, type PromptFormat } from "../src/chat-template.js";
import {
  type InterruptSource,
  answerPrompt,
  runChat,
  type StreamingGenerator,
} from "../src/prompt.js";
import { APP_DIR } from "./helpers.js";

const FIXTURES = join(APP_DIR, "test/fixtures/chat-templates");
const plain = await loadPromptFormat(join(FIXTURES, "no-template"));
const chatml = await loadPromptFormat(join(FIXTURES, "chatml"));

/** Answers "answer N" in pieces of two characters and records what it was asked. */
class FakeGenerator implements StreamingGenerator {
  readonly calls: Array<{ prompt: string; options: GenerateOptions }> = [];
  async generate(prompts: string[], options: GenerateOptions = {}): Promise<string[]> {
    const prompt = prompts[0]!;
    this.calls.push({ prompt, options });
    const answer = `answer ${this.calls.length}`;
    for (let i = 0; i < answer.length; i += 2) {
      // Pieces arrive over time, as tokens do.
      await new Promise((r) => setTimeout(r, 1));
      options.onText?.(0, answer.slice(i, i + 2));
    }
    return [answer];
  }
}

/** Shows one piece, then waits until the answer is aborted (a long answer stopped by Ctrl-C). */
class StoppableGenerator implements StreamingGenerator {
  started: () => void = () => {};
  readonly startedP = new Promise<void>((r) => {
    this.started = r;
  });
  async generate(_prompts: string[], options: GenerateOptions = {}): Promise<string[]> {
    options.onText?.(0, "part");
    this.started();
    const signal = options.signal!;
    if (!signal.aborted) await new Promise((r) => signal.addEventListener("abort", r));
    return ["part"];
  }
}

function collect(stream: PassThrough): () => string {
  let text = "";
  stream.on("data", (d) => {
    text += d;
  });
  return () => text;
}

/** Interrupts under the test's control (standing in for Ctrl-C). */
function manualInterrupts(): { source: InterruptSource; fire: () => void } {
  const handlers = new Set<() => void>();
  return {
    source: (on) => {
      handlers.add(on);
      return () => handlers.delete(on);
    },
    fire: () => {
      for (const h of [...handlers]) h();
    },
  };
}

async function chat(
  format: PromptFormat,
  lines: string,
  generator: StreamingGenerator = new FakeGenerator(),
): Promise<{ out: string; logs: string[]; turns: number }> {
  const input = new PassThrough();
  const output = new PassThrough();
  const out = collect(output);
  const logs: string[] = [];
  input.end(lines);
  const { turns } = await runChat(
    generator,
    format,
    { maxNewTokens: 7, stop: ["###"] },
    {
      input,
      output,
      log: (m) => logs.push(m),
      interrupts: manualInterrupts().source,
    },
  );
  return { out: out(), logs, turns };
}

describe("--prompt (answerPrompt)", () => {
  it("streams the pieces to the output, then a newline, with the config's settings", async () => {
    const gen = new FakeGenerator();
    const output = new PassThrough();
    const writes: string[] = [];
    output.on("data", (d) => writes.push(String(d)));
    const r = await answerPrompt(
      gen,
      plain,
      "Hi",
      { maxNewTokens: 5, stop: ["\n"] },
      output,
      manualInterrupts().source,
    );
    expect(r).toEqual({ answer: "answer 1", interrupted: false });
    expect(writes).toEqual(["an", "sw", "er", " 1", "\n"]);
    expect(gen.calls[0]!.prompt).toBe("Hi");
    expect(gen.calls[0]!.options).toMatchObject({
      maxNewTokens: 5,
      stop: ["\n"],
      batchSize: 1,
      addSpecialTokens: true,
    });
  });

  it("renders the base's chat template, and then adds no BOS of its own", async () => {
    const gen = new FakeGenerator();
    await answerPrompt(
      gen,
      chatml,
      "Hi",
      { maxNewTokens: 5 },
      new PassThrough(),
      manualInterrupts().source,
    );
    expect(gen.calls[0]!.prompt).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(gen.calls[0]!.options.addSpecialTokens).toBe(false);
  });

  it("Ctrl-C stops the answer where it is", async () => {
    const gen = new StoppableGenerator();
    const ctl = manualInterrupts();
    const output = new PassThrough();
    const out = collect(output);
    const done = answerPrompt(gen, plain, "Hi", { maxNewTokens: 5 }, output, ctl.source);
    await gen.startedP;
    ctl.fire();
    expect(await done).toEqual({ answer: "part", interrupted: true });
    expect(out()).toBe("part\n");
  });
});

describe("--chat (runChat)", () => {
  it("keeps the history: the second prompt holds the first turn and its answer", async () => {
    const gen = new FakeGenerator();
    const r = await chat(chatml, "first question\nsecond question\n", gen);
    expect(r.turns).toBe(2);
    expect(r.out).toBe("answer 1\nanswer 2\n");
    expect(gen.calls.map((c) => c.prompt)).toEqual([
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nfirst question<|im_end|>\n<|im_start|>assistant\n",
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nfirst question<|im_end|>\n<|im_start|>assistant\nanswer 1<|im_end|>\n<|im_start|>user\nsecond question<|im_end|>\n<|im_start|>assistant\n",
    ]);
    expect(gen.calls[1]!.options).toMatchObject({ maxNewTokens: 7, stop: ["###"] });
  });

  it("plain text: the turns one per line; blank lines skipped; a trailing backslash continues the turn", async () => {
    const gen = new FakeGenerator();
    const r = await chat(plain, "\n  \nQ one?\\\nAnswer:\n\nQ two\n", gen);
    expect(r.turns).toBe(2);
    expect(gen.calls.map((c) => c.prompt)).toEqual([
      "Q one?\nAnswer:",
      "Q one?\nAnswer:\nanswer 1\nQ two",
    ]);
  });

  it('"exit" ends the chat; later lines are not answered', async () => {
    const gen = new FakeGenerator();
    const r = await chat(plain, "hello\nexit\nnever\n", gen);
    expect(r.turns).toBe(1);
    expect(gen.calls).toHaveLength(1);
    expect((await chat(plain, "quit\nnever\n")).turns).toBe(0);
  });

  it("the end of input (Ctrl-D) ends it cleanly", async () => {
    expect(await chat(plain, "")).toEqual({ out: "", logs: [], turns: 0 });
    expect((await chat(plain, "no newline at the end")).turns).toBe(1);
  });

  it("the Mistral-instruct template alternates the turns, BOS once at the start", async () => {
    const mistral = await loadPromptFormat(join(FIXTURES, "mistral-instruct"));
    const gen = new FakeGenerator();
    expect((await chat(mistral, "one\ntwo\n", gen)).turns).toBe(2);
    expect(gen.calls[1]!.prompt).toBe("<s>[INST] one [/INST]answer 1</s> [INST] two [/INST]");
  });

  it("a turn the template refuses is reported and left out of the history; the chat goes on", async () => {
    const dir = await mkdtemp(join(tmpdir(), "chat-refuse-"));
    try {
      await writeFile(
        join(dir, "tokenizer_config.json"),
        JSON.stringify({
          chat_template:
            "{% if messages[-1]['content'] == 'bad' %}{{ raise_exception('no bad words') }}{% endif %}" +
            "{% for m in messages %}{{ m['content'] }}|{% endfor %}",
        }),
      );
      const gen = new FakeGenerator();
      const r = await chat(await loadPromptFormat(dir), "a\nbad\nc\n", gen);
      expect(r.turns).toBe(2);
      expect(r.logs).toHaveLength(1);
      expect(r.logs[0]).toMatch(
        /^error: the chat template of .* stopped on this conversation: no bad words$/,
      );
      expect(gen.calls.map((c) => c.prompt)).toEqual(["a|", "a|answer 1|c|"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("an unexpected error (a bug, not the input) ends the chat with that error", async () => {
    const failing: StreamingGenerator = {
      generate: () => Promise.reject(new TypeError("a bug")),
    };
    await expect(chat(plain, "a\nb\n", failing)).rejects.toThrow("a bug");
  });

  it("Ctrl-C during an answer stops that answer only; what was shown stays in the history", async () => {
    const stoppable = new StoppableGenerator();
    const follow = new FakeGenerator();
    let call = 0;
    const gen: StreamingGenerator = {
      generate: (p, o) => (++call === 1 ? stoppable.generate(p, o) : follow.generate(p, o)),
    };
    const ctl = manualInterrupts();
    const input = new PassThrough();
    const output = new PassThrough();
    const out = collect(output);
    const logs: string[] = [];
    const done = runChat(
      gen,
      plain,
      { maxNewTokens: 3 },
      { input, output, log: (m) => logs.push(m), interrupts: ctl.source },
    );
    input.write("long one\n");
    await stoppable.startedP;
    ctl.fire();
    input.end("next\n");
    expect(await done).toEqual({ turns: 2 });
    expect(out()).toBe("part\nanswer 1\n");
    expect(logs).toEqual(["(answer stopped)"]);
    expect(follow.calls[0]!.prompt).toBe("long one\npart\nnext");
  });

  it("Ctrl-C at the prompt ends the chat", async () => {
    const ctl = manualInterrupts();
    const input = new PassThrough();
    const gen = new FakeGenerator();
    const done = runChat(
      gen,
      plain,
      { maxNewTokens: 3 },
      { input, output: new PassThrough(), log: () => {}, interrupts: ctl.source },
    );
    await new Promise((r) => setTimeout(r, 10));
    ctl.fire();
    expect(await done).toEqual({ turns: 0 });
  });
});

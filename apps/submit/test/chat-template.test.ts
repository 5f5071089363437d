import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@merge/mistral-onnx";
import { afterAll, describe, expect, it } from "vitest";
import {
  type ChatMessage,
  describePromptFormat,
  loadPromptFormat,
  renderPrompt,
} from "../src/chat-template.js";
import { SubmitError } from "../src/errors.js";
import { APP_DIR, REPO } from "./helpers.js";

/** Made by tools/fixtures/submit/make_chat_template_fixtures.py with transformers. */
const FIXTURES = join(APP_DIR, "test/fixtures/chat-templates");
const TOKENIZER_JSON = join(REPO, "packages/mistral-onnx/test/fixtures/tokenizer/tokenizer.json");

interface Case {
  messages: ChatMessage[];
  text: string | null;
  ids?: number[];
  error?: string;
}
const expected = JSON.parse(await readFile(join(FIXTURES, "expected.json"), "utf8")) as Record<
  string,
  Case[]
>;

const temps: string[] = [];
afterAll(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "chat-template-"));
  temps.push(d);
  return d;
}

/** The fixture tokenizer with one fixture folder's tokenizer_config.json (as the script used). */
async function tokenizerFor(folder: string): Promise<Tokenizer> {
  const dir = await tempDir();
  for (const f of await readdir(folder)) await copyFile(join(folder, f), join(dir, f));
  await copyFile(TOKENIZER_JSON, join(dir, "tokenizer.json"));
  return Tokenizer.fromDir(dir);
}

describe("chat templates rendered as transformers' apply_chat_template does", () => {
  it("covers the Mistral-instruct, ChatML, multi-line .jinja, named-list and no-template fixtures", () => {
    expect(Object.keys(expected).sort()).toEqual(
      ["chatml", "mistral-instruct", "named-templates", "no-template", "zephyr-jinja-file"].sort(),
    );
  });

  for (const [name, cases] of Object.entries(expected)) {
    it(`${name}: same text, same token ids (one BOS at most), same refusals`, async () => {
      const folder = join(FIXTURES, name);
      const format = await loadPromptFormat(folder);
      const hasTemplate = cases.some((c) => c.text !== null || c.error !== undefined);
      expect(format.kind).toBe(hasTemplate ? "template" : "plain");
      const tok = await tokenizerFor(folder);
      for (const c of cases) {
        if (c.error !== undefined) {
          expect(() => renderPrompt(format, c.messages)).toThrow(SubmitError);
          expect(() => renderPrompt(format, c.messages)).toThrow(c.error);
          continue;
        }
        const rendered = renderPrompt(format, c.messages);
        if (c.text === null) {
          // Plain text: the turns one per line, BOS added by the tokenizer as for any prompt.
          expect(rendered).toEqual({
            text: c.messages.map((m) => m.content).join("\n"),
            addSpecialTokens: true,
          });
          continue;
        }
        expect(rendered.text).toBe(c.text);
        expect(rendered.addSpecialTokens).toBe(false);
        const ids = tok.encode(rendered.text, { addSpecialTokens: rendered.addSpecialTokens });
        expect(ids).toEqual(c.ids);
        expect(ids.filter((id) => id === tok.bosId).length).toBeLessThanOrEqual(1);
      }
    });
  }

  it("a single plain prompt is its text unchanged; the note says which format is used", async () => {
    const plain = await loadPromptFormat(join(FIXTURES, "no-template"));
    expect(renderPrompt(plain, [{ role: "user", content: "Hi\nthere" }]).text).toBe("Hi\nthere");
    expect(describePromptFormat(plain)).toMatch(
      /^no chat template in .*tokenizer_config\.json: prompts are plain text$/,
    );
    const file = await loadPromptFormat(join(FIXTURES, "zephyr-jinja-file"));
    expect(describePromptFormat(file)).toMatch(/chat_template\.jinja$/);
    const named = await loadPromptFormat(join(FIXTURES, "named-templates"));
    expect(describePromptFormat(named)).toMatch(/\(chat_template "default"\)$/);
  });
});

describe("bad chat templates are clear errors naming the file", () => {
  async function withConfig(config: unknown, raw?: string): Promise<string> {
    const dir = await tempDir();
    await writeFile(join(dir, "tokenizer_config.json"), raw ?? JSON.stringify(config));
    return dir;
  }

  it("invalid JSON in tokenizer_config.json", async () => {
    const dir = await withConfig(null, "{ nope");
    await expect(loadPromptFormat(dir)).rejects.toThrow(/tokenizer_config\.json: invalid JSON/);
  });

  it("a template that does not parse", async () => {
    const dir = await withConfig({ chat_template: "{% for m in messages %}{{ m.content }" });
    await expect(loadPromptFormat(dir)).rejects.toThrow(
      /tokenizer_config\.json \(chat_template\): the chat template does not parse/,
    );
  });

  it("a list of templates without a default, a malformed list, a template of the wrong type", async () => {
    let dir = await withConfig({ chat_template: [{ name: "tool_use", template: "x" }] });
    await expect(loadPromptFormat(dir)).rejects.toThrow(/none named "default"/);
    dir = await withConfig({ chat_template: [{ name: "default" }] });
    await expect(loadPromptFormat(dir)).rejects.toThrow(/not every entry is/);
    dir = await withConfig({ chat_template: 42 });
    await expect(loadPromptFormat(dir)).rejects.toThrow(/must be a string or a list/);
  });

  it("a template that fails while rendering names its source", async () => {
    const dir = await withConfig({ chat_template: "{{ messages[0].content.nope() }}" });
    const format = await loadPromptFormat(dir);
    expect(() => renderPrompt(format, [{ role: "user", content: "x" }])).toThrow(
      /the chat template of .*tokenizer_config\.json \(chat_template\) stopped on this conversation/,
    );
  });

  it("no tokenizer_config.json at all means plain text", async () => {
    const format = await loadPromptFormat(await tempDir());
    expect(format.kind).toBe("plain");
  });
});

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { SubmitError } from "./errors.js";

/** One turn of a conversation, as chat templates take it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/**
 * How a conversation becomes the model's prompt text: the base's chat template, or plain text
 * when it has none.
 */
export type PromptFormat =
  | {
      kind: "template";
      /** The file (and field) the template came from, for messages. */
      source: string;
      template: Template;
      /** The named special tokens as transformers passes them (special_tokens_map). */
      specialTokens: Record<string, string>;
    }
  | { kind: "plain" /** Where a template was looked for. */; source: string };

/** The prompt text for a conversation, and whether the tokenizer should add BOS to it. */
export interface RenderedPrompt {
  text: string;
  /**
   * False for a rendered template: transformers' apply_chat_template encodes it with
   * add_special_tokens=False, since a template that wants BOS writes it (a second BOS would
   * change the answer). True for plain text, encoded as every other prompt is.
   */
  addSpecialTokens: boolean;
}

/** The attributes transformers' special_tokens_map holds (SPECIAL_TOKENS_ATTRIBUTES). */
const SPECIAL_TOKEN_FIELDS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** transformers writes a single template to this file; it wins over tokenizer_config.json's. */
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SubmitError(`cannot read ${file}: ${(err as Error).message}`, 1, {
      cause: err,
      where: { file },
    });
  }
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (
    value &&
    typeof value === "object" &&
    typeof (value as { content?: unknown }).content === "string"
  )
    return (value as { content: string }).content;
  return undefined;
}

/**
 * The template transformers would use: `chat_template.jinja` if present, else
 * tokenizer_config.json's `chat_template` (a string, or a list of {name, template} of which the
 * one named "default" is used, as get_chat_template does without tools).
 */
function pickTemplate(
  file: string,
  config: Record<string, unknown>,
): { text: string; source: string } | undefined {
  const value = config.chat_template;
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return { text: value, source: `${file} (chat_template)` };
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        typeof t === "object" &&
        t !== null &&
        typeof (t as { name?: unknown }).name === "string" &&
        typeof (t as { template?: unknown }).template === "string",
    );
    if (named.length !== value.length) {
      throw new SubmitError(
        `${file}: chat_template is a list, but not every entry is {"name": string, "template": string}`,
        1,
        { where: { file, field: "chat_template" } },
      );
    }
    const def = named.find((t) => t.name === "default");
    if (def === undefined) {
      throw new SubmitError(
        `${file}: chat_template lists templates ${named.map((t) => JSON.stringify(t.name)).join(", ")} but none named "default" (the one used without tools)`,
        1,
        { where: { file, field: "chat_template" } },
      );
    }
    return { text: def.template, source: `${file} (chat_template "default")` };
  }
  throw new SubmitError(
    `${file}: chat_template must be a string or a list of {name, template}, got ${typeof value}`,
    1,
    { where: { file, field: "chat_template" } },
  );
}

/** Reads the base's chat template (see pickTemplate); plain text when it has none. */
export async function loadPromptFormat(modelDir: string): Promise<PromptFormat> {
  const configFile = join(modelDir, "tokenizer_config.json");
  const configText = await readIfExists(configFile);
  let config: Record<string, unknown> = {};
  if (configText !== undefined) {
    try {
      config = JSON.parse(configText) as Record<string, unknown>;
    } catch (err) {
      throw new SubmitError(`${configFile}: invalid JSON (${(err as Error).message})`, 1, {
        cause: err,
        where: { file: configFile },
      });
    }
  }
  const jinjaFile = join(modelDir, CHAT_TEMPLATE_FILE);
  const jinja = await readIfExists(jinjaFile);
  const picked =
    jinja !== undefined ? { text: jinja, source: jinjaFile } : pickTemplate(configFile, config);
  if (picked === undefined) return { kind: "plain", source: configFile };
  let template: Template;
  try {
    template = new Template(picked.text);
  } catch (err) {
    throw new SubmitError(
      `${picked.source}: the chat template does not parse: ${(err as Error).message}`,
      1,
      {
        cause: err,
        where: { file: jinja !== undefined ? jinjaFile : configFile, field: "chat_template" },
      },
    );
  }
  const specialTokens: Record<string, string> = {};
  for (const field of SPECIAL_TOKEN_FIELDS) {
    const text = tokenText(config[field]);
    if (text !== undefined) specialTokens[field] = text;
  }
  return { kind: "template", source: picked.source, template, specialTokens };
}

/** The one-line note on stderr saying how prompts are formatted. */
export function describePromptFormat(format: PromptFormat): string {
  return format.kind === "template"
    ? `prompts use the chat template of ${format.source}`
    : `no chat template in ${format.source}: prompts are plain text`;
}

/**
 * The prompt for a conversation whose last message is the user's. With a template: rendered as
 * transformers' apply_chat_template(messages, add_generation_prompt=True, tokenize=False) does
 * (special tokens as variables, tools and documents none). Plain: the turns' texts, one per
 * line, which the model continues; a single prompt is its text unchanged.
 */
export function renderPrompt(
  format: PromptFormat,
  messages: readonly ChatMessage[],
): RenderedPrompt {
  if (format.kind === "plain") {
    return { text: messages.map((m) => m.content).join("\n"), addSpecialTokens: true };
  }
  let text: string;
  try {
    text = format.template.render({
      ...format.specialTokens,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      tools: null,
      documents: null,
      add_generation_prompt: true,
    });
  } catch (err) {
    // The engine's raise_exception (a template refusing, e.g. roles that do not alternate)
    // throws a plain Error with the template's message, as other render failures do.
    throw new SubmitError(
      `the chat template of ${format.source} stopped on this conversation: ${(err as Error).message}`,
      1,
      { cause: err },
    );
  }
  return { text, addSpecialTokens: false };
}

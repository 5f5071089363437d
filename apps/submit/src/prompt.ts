import { createInterface } from "node:readline";
import { type GenerateOptions, MistralOnnxError } from "@merge/mistral-onnx";
import { type ChatMessage, type PromptFormat, renderPrompt } from "./chat-template.js";
import { SubmitError } from "./errors.js";

/** What answers prompts: MistralRunner's generate (a stand-in in tests). */
export interface StreamingGenerator {
  generate(prompts: string[], options?: GenerateOptions): Promise<string[]>;
}

/** Generation settings of an answer (the run config's runtime.maxNewTokens and runtime.stop). */
export interface AnswerSettings {
  maxNewTokens: number;
  stop?: string[];
}

/** Subscribes to Ctrl-C; returns the unsubscribe. */
export type InterruptSource = (onInterrupt: () => void) => () => void;

/** Ctrl-C as a signal to this process (stdin not a terminal, or outside readline). */
export const processInterrupts: InterruptSource = (on) => {
  process.on("SIGINT", on);
  return () => {
    process.off("SIGINT", on);
  };
};

/**
 * Streams the model's answer to the conversation (whose last message is the user's) into
 * `write` as it is generated; returns the whole answer, which is what was written.
 */
export async function streamAnswer(
  generator: StreamingGenerator,
  format: PromptFormat,
  messages: readonly ChatMessage[],
  settings: AnswerSettings,
  write: (piece: string) => void,
  signal?: AbortSignal,
): Promise<string> {
  const rendered = renderPrompt(format, messages);
  const [answer] = await generator.generate([rendered.text], {
    maxNewTokens: settings.maxNewTokens,
    ...(settings.stop ? { stop: settings.stop } : {}),
    batchSize: 1,
    addSpecialTokens: rendered.addSpecialTokens,
    onText: (_prompt, piece) => write(piece),
    ...(signal ? { signal } : {}),
  });
  return answer ?? "";
}

/**
 * `--prompt`: streams the answer to one prompt to `output`, then a newline. Ctrl-C stops the
 * answer where it is (a second one ends the process as usual); returns whether it was stopped.
 */
export async function answerPrompt(
  generator: StreamingGenerator,
  format: PromptFormat,
  prompt: string,
  settings: AnswerSettings,
  output: NodeJS.WritableStream,
  interrupts: InterruptSource = processInterrupts,
): Promise<{ answer: string; interrupted: boolean }> {
  const controller = new AbortController();
  const unsubscribe = interrupts(() => {
    unsubscribe();
    controller.abort();
  });
  try {
    const answer = await streamAnswer(
      generator,
      format,
      [{ role: "user", content: prompt }],
      settings,
      (piece) => output.write(piece),
      controller.signal,
    );
    output.write("\n");
    return { answer, interrupted: controller.signal.aborted };
  } finally {
    unsubscribe();
  }
}

export interface ChatIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream & { isTTY?: boolean };
  /** Notes and per-turn errors (default: stderr). */
  log?: (message: string) => void;
  /** Ctrl-C outside a terminal (default: SIGINT to this process). */
  interrupts?: InterruptSource;
}

/** Lines that end the chat (as Ctrl-D / end of input does). */
export const CHAT_EXIT_WORDS = ["exit", "quit"] as const;

/**
 * `--chat`: a read–answer loop over `input` (node:readline). Each line is a user turn; the answer
 * streams to `output`, then a newline, and both join the history that the next prompt is
 * rendered from. A line ending in a backslash goes on on the next line (the turn keeps the line
 * break). Empty lines are skipped; "exit", "quit", Ctrl-D or the end of input end it.
 * Ctrl-C during an answer stops that answer (what was shown stays in the history); at the prompt
 * it ends the chat. A turn the model or the template fails on is reported and left out of the
 * history; the chat goes on. Prompts ("> ") are shown only on a terminal.
 */
export async function runChat(
  generator: StreamingGenerator,
  format: PromptFormat,
  settings: AnswerSettings,
  io: ChatIo,
): Promise<{ turns: number }> {
  const log = io.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const terminal = Boolean(io.input.isTTY && io.output.isTTY);
  const rl = createInterface({ input: io.input, output: io.output, terminal, prompt: "> " });
  const history: ChatMessage[] = [];
  let answering: AbortController | null = null;
  let closed = false;
  const interrupt = () => {
    if (answering !== null) answering.abort();
    else {
      closed = true;
      rl.close();
    }
  };
  // On a terminal readline reads Ctrl-C as a key and emits SIGINT on the interface.
  rl.on("SIGINT", interrupt);
  const unsubscribe = (io.interrupts ?? processInterrupts)(interrupt);
  let turns = 0;
  let pending: string[] = [];
  try {
    if (terminal) rl.prompt();
    for await (const line of rl) {
      if (line.endsWith("\\")) {
        pending.push(line.slice(0, -1));
        if (terminal) {
          rl.setPrompt("… ");
          rl.prompt();
          rl.setPrompt("> ");
        }
        continue;
      }
      const text = [...pending, line].join("\n").trim();
      pending = [];
      if ((CHAT_EXIT_WORDS as readonly string[]).includes(text)) break;
      if (text !== "") {
        history.push({ role: "user", content: text });
        const controller = new AbortController();
        answering = controller;
        try {
          const answer = await streamAnswer(
            generator,
            format,
            history,
            settings,
            (piece) => io.output.write(piece),
            controller.signal,
          );
          io.output.write("\n");
          history.push({ role: "assistant", content: answer });
          turns++;
          if (controller.signal.aborted) log("(answer stopped)");
        } catch (err) {
          if (!(err instanceof SubmitError || err instanceof MistralOnnxError)) throw err;
          history.pop();
          log(`error: ${err.message}`);
        } finally {
          answering = null;
        }
      }
      if (closed) break;
      if (terminal) rl.prompt();
    }
  } finally {
    unsubscribe();
    rl.close();
  }
  return { turns };
}

import type { MistralRunner } from "@merge/mistral-onnx";
import { describePromptFormat, loadPromptFormat } from "./chat-template.js";
import type { SubmitConfig } from "./config.js";
import { EXIT_BUDGET_CUT, SubmitError } from "./errors.js";
import { type AnswerSettings, answerPrompt, runChat } from "./prompt.js";
import type { PromptMode } from "./prompt-mode.js";

/** Exit status of a --prompt answer stopped by Ctrl-C (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

/**
 * --prompt / --chat on the built model: the base's chat template (or plain text, said in one
 * line on stderr), generation settings from the run config, answers streamed to stdout.
 */
export async function promptPhase(
  mode: PromptMode,
  runner: MistralRunner | undefined,
  budgetCutIn: string | null,
  baseDir: string,
  config: SubmitConfig,
  log: (message: string) => void,
): Promise<{ exitCode: number; message: string }> {
  if (runner === undefined) {
    throw new SubmitError(
      `the time budget ran out during the ${budgetCutIn ?? "build"}: there is no model to answer with; raise --budget`,
      EXIT_BUDGET_CUT,
    );
  }
  const format = await loadPromptFormat(baseDir);
  log(describePromptFormat(format));
  const settings: AnswerSettings = {
    maxNewTokens: config.runtime.maxNewTokens,
    ...(config.runtime.stop ? { stop: config.runtime.stop } : {}),
  };
  if (mode.kind === "prompt") {
    const { interrupted } = await answerPrompt(runner, format, mode.text, settings, process.stdout);
    return interrupted
      ? { exitCode: EXIT_INTERRUPTED, message: "the answer was stopped (Ctrl-C)" }
      : { exitCode: 0, message: "answered the prompt" };
  }
  const { turns } = await runChat(runner, format, settings, {
    input: process.stdin,
    output: process.stdout,
    log,
  });
  return { exitCode: 0, message: `chat ended after ${turns} answer${turns === 1 ? "" : "s"}` };
}

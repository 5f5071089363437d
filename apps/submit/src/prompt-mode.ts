import { SubmitError } from "./errors.js";

/** Answer prompts on the merged model instead of a CSV: one prompt, or a chat. */
export type PromptMode = { kind: "prompt"; text: string } | { kind: "chat" };

/** The command-line flags that pick a prompt mode or clash with one. */
export interface PromptModeFlags {
  prompt?: string;
  chat?: boolean;
  mergeOnly?: boolean;
  saveAdapter?: string;
  data?: string;
  out?: string;
  evalLabelled?: string[];
}

/**
 * The prompt mode the flags ask for (null: answer the CSV), refusing combinations that make no
 * sense before any work: both modes at once, an empty prompt, and the flags of the CSV and
 * merge-only runs, which a prompt run would silently ignore.
 */
export function planPromptMode(flags: PromptModeFlags): PromptMode | null {
  const chat = flags.chat ?? false;
  if (flags.prompt === undefined && !chat) return null;
  if (flags.prompt !== undefined && chat) {
    throw new SubmitError(
      "--prompt and --chat exclude each other: --prompt answers one prompt, --chat opens a conversation",
    );
  }
  const mode = chat ? "--chat" : "--prompt";
  const clashes: Array<[string, boolean]> = [
    ["--merge-only", flags.mergeOnly ?? false],
    ["--save-adapter", flags.saveAdapter !== undefined],
    ["--data", flags.data !== undefined],
    ["--out", flags.out !== undefined],
    ["--eval-labelled", flags.evalLabelled !== undefined],
  ];
  const used = clashes.filter(([, on]) => on).map(([name]) => name);
  if (used.length > 0) {
    throw new SubmitError(
      `${mode} answers on the terminal and answers no CSV; it cannot be used with ${used.join(", ")}`,
    );
  }
  if (flags.prompt !== undefined) {
    if (flags.prompt.trim() === "") throw new SubmitError("--prompt: the prompt is empty");
    return { kind: "prompt", text: flags.prompt };
  }
  return { kind: "chat" };
}

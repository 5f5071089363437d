import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import type { ModelSource } from "./sources.js";

/** A model or adapter source as the card names it (no fingerprint). */
export type CardSource = Pick<ModelSource, "label" | "dir" | "kind" | "spec"> & {
  commit?: string;
};

/** Everything a model card states; the caller gathers it from the run. */
export interface ModelCardInput {
  /** "model": a merged checkpoint (library transformers); "adapter": a PEFT LoRA adapter. */
  kind: "model" | "adapter";
  base: CardSource;
  experts: readonly CardSource[];
  method: string;
  resultKind: string;
  hyperparameters: Record<string, unknown>;
  seed: number;
  expertWeights: readonly number[] | null;
  /** For an SVD-truncated adapter of a dense result. */
  truncation?: { rank: number; relativeError: number } | undefined;
  /** Versions of this app and the packages that decide the merged weights. */
  versions: Record<string, string>;
  /** The command line that made it, as typed (shell-quoted). */
  command: string;
}

/** The version of this app (apps/submit/package.json), for model cards. */
export function submitVersion(): string {
  const file = fileURLToPath(new URL("../package.json", import.meta.url));
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/**
 * How a base is named for loaders: the Hub repo id for a Hub base, else its absolute folder
 * (a relative spec such as "data/zoo/base" only works from the workspace root).
 */
export function baseModelId(base: CardSource): string {
  return base.kind === "hub" ? base.label : base.dir;
}

function revisionOf(s: CardSource): string {
  if (s.kind === "hub") return s.commit ?? "unknown (not resolved to a commit)";
  return "local folder (no revision)";
}

/** Quotes a command-line word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

function code(text: string): string {
  return `\`${text.replace(/`/g, "'")}\``;
}

/**
 * A Hugging Face Hub model card: YAML front matter (base_model, library_name, tags; the Hub
 * reads these) and a body naming the base and every expert with its revision, the method and
 * its hyperparameters, the toolkit's versions and the command that made it.
 */
export function renderModelCard(c: ModelCardInput): string {
  const library = c.kind === "model" ? "transformers" : "peft";
  const front: Record<string, unknown> = {
    base_model: baseModelId(c.base),
    library_name: library,
    pipeline_tag: "text-generation",
    tags: [
      "merge",
      "lora-merge",
      c.method,
      ...(c.kind === "adapter" ? ["lora", ...(c.truncation ? ["svd-truncated"] : [])] : []),
    ],
  };
  const what =
    c.kind === "model"
      ? "the base model with the merged update added to its weights, in the base's dtype"
      : c.truncation
        ? `a PEFT LoRA adapter: the rank-${c.truncation.rank} SVD truncation of the merged (dense) update`
        : "a PEFT LoRA adapter holding the merged update exactly";
  const lines = [
    "---",
    stringify(front).trimEnd(),
    "---",
    "",
    `# ${c.method} merge of ${c.experts.length} LoRA expert${c.experts.length === 1 ? "" : "s"} into ${c.base.label}`,
    "",
    `This is ${what}, made by ${code("lora-merge submit")} with the ${code(c.method)} method.`,
    "",
    "## Base model",
    "",
    `- ${code(baseModelId(c.base))}, revision ${code(revisionOf(c.base))}`,
    "",
    "## Experts",
    "",
    "| # | expert | source | revision |",
    "|---|---|---|---|",
    ...c.experts.map(
      (e, i) =>
        `| ${i + 1} | ${e.label.replace(/\|/g, "\\|")} | ${code(e.kind === "hub" ? e.label : e.dir)} | ${code(revisionOf(e))} |`,
    ),
    "",
    "## Method",
    "",
    `- method: ${code(c.method)} (result: ${c.resultKind})`,
    `- seed: ${c.seed}`,
    `- expert weights: ${c.expertWeights === null ? "1 each (default)" : code(JSON.stringify(c.expertWeights))}`,
    ...(c.truncation
      ? [
          `- adapter rank: ${c.truncation.rank}; relative Frobenius error of the truncation over all modules: ${c.truncation.relativeError.toPrecision(4)}`,
        ]
      : []),
    "- hyperparameters:",
    "",
    "```yaml",
    Object.keys(c.hyperparameters).length === 0 ? "{}" : stringify(c.hyperparameters).trimEnd(),
    "```",
    "",
    "## How it was made",
    "",
    "Versions:",
    "",
    ...Object.entries(c.versions).map(([name, v]) => `- ${code(name)} ${v}`),
    "",
    "Command:",
    "",
    "```sh",
    c.command,
    "```",
    "",
    c.kind === "model"
      ? [
          "Load it with transformers:",
          "",
          "```python",
          "from transformers import AutoModelForCausalLM, AutoTokenizer",
          'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
          'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
          "```",
        ].join("\n")
      : [
          "Load it with PEFT (the base is named in adapter_config.json):",
          "",
          "```python",
          "from peft import AutoPeftModelForCausalLM",
          'model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder")',
          "```",
        ].join("\n"),
    "",
  ];
  return lines.join("\n");
}

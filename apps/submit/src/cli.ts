import {
  DEFAULT_STRATEGY,
  describeParam,
  listStrategies,
  type ResultKind,
} from "@merge/strategies";

/** What each kind of merge result can leave the toolkit as. */
const EXPORTS: Record<ResultKind, string> = {
  lowrank:
    "ONNX model (--save-onnx), merged checkpoint (--save-model) or PEFT adapter (--save-adapter)",
  dense:
    "ONNX model (--save-onnx), merged checkpoint (--save-model) or SVD-truncated PEFT adapter (--save-adapter with --adapter-rank)",
  routed: "ONNX model with a router per adapted module (--save-onnx)",
};
import { Command, InvalidArgumentError } from "commander";
import { DEFAULT_SHARD_SIZE } from "./export-plan.js";
import { runSubmit } from "./pipeline.js";
import { parseHyperFlags } from "./plan.js";
import { formatCliError } from "./report-error.js";
import { findWorkspaceRoot } from "./workspace.js";

// The budget counts from process start: performance.now() is measured from the process's time
// origin, and this module runs only after every import has loaded (1–2 s under tsx).
const startedAt = 0;

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError("expected a positive number of seconds");
  return n;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a whole number ≥ 1");
  return n;
}

function program(): Command {
  return new Command()
    .name("submit")
    .description(
      "Merge LoRA experts into one model and answer a competition CSV.\n" +
        "Relative paths resolve against the workspace root (the folder with pnpm-workspace.yaml).",
    )
    .option("-c, --config <file>", "config file, JSON or YAML (default: configs/embedded.yaml)")
    .option(
      "-m, --method <name>",
      `merge method from @merge/strategies (default: the config's, else ${DEFAULT_STRATEGY})`,
    )
    .option(
      "--hyper <key=value...>",
      "set a hyperparameter of the method, e.g. --hyper density=0.5 (repeatable; checked before any work)",
    )
    .option("--data <file>", "competition CSV to answer (default: the config's, data/test.csv)")
    .option("--out <file>", "predictions CSV to write (default: the config's, output/test.csv)")
    .option(
      "--budget <seconds>",
      "wall-clock budget for merge + evaluation (default 3600)",
      seconds,
    )
    .option(
      "--merge-only",
      "merge and export, answer nothing (needs --save-adapter, --save-model or --save-onnx)",
    )
    .option(
      "--save-adapter <dir>",
      "with --merge-only: write the merged model as a PEFT LoRA adapter (+ README.md model card)",
    )
    .option(
      "--adapter-rank <n>",
      "with --save-adapter and a dense method: keep the rank-n truncated SVD of each merged update (the error is reported)",
      positiveInteger,
    )
    .option(
      "--save-model <dir>",
      "with --merge-only: write the merged model as a transformers checkpoint (sharded safetensors in the base's dtype, config, tokenizer, README.md model card)",
    )
    .option(
      "--shard-size <size>",
      `largest shard of --save-model, as transformers' max_shard_size (default ${DEFAULT_SHARD_SIZE})`,
    )
    .option(
      "--save-onnx <dir>",
      "write the merged ONNX model as a folder transformers.js loads (onnx/model.onnx + model.onnx_data, config and tokenizer); with --merge-only, answer nothing",
    )
    .option(
      "--eval-labelled <files...>",
      "labelled CSVs (with a target column) to answer and score; replaces --data unless it is given",
    )
    .option(
      "--prompt <text>",
      "answer one prompt on the merged model, streamed to stdout (the base's chat template if it has one); no CSV",
    )
    .option(
      "--chat",
      "talk to the merged model: each stdin line is a turn, answers stream to stdout; exit, Ctrl-D or end of input ends it",
    )
    .option(
      "--max-new-tokens <n>",
      "most new tokens per answer (default: the config's runtime.maxNewTokens)",
      positiveInteger,
    )
    .option("--skip-bad-rows", "warn about invalid CSV rows and answer them with placeholders")
    .option("--no-progress", "no progress output")
    .option("--list-methods", "list the merge methods and exit")
    .addHelpText(
      "after",
      "\nExit status: 0 done; 1 error; 3 the time budget cut rows; 4 the model failed on some rows\n(with 3 and 4 the CSV is still complete and valid).\n" +
        "Example: pnpm --filter submit start -- --config configs/mistral-7b.yaml --budget 3000\n" +
        'Ask the merged model: pnpm --filter submit start -- --prompt "What is 2 + 3?" (or --chat)',
    );
}

async function main(argv: string[]): Promise<number> {
  // `pnpm start -- --flag` may pass the separator through; commander would then treat every
  // following flag as an operand.
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  const cmd = program();
  cmd.parse(args, { from: "user" });
  const o = cmd.opts<{
    config?: string;
    method?: string;
    hyper?: string[];
    data?: string;
    out?: string;
    budget?: number;
    mergeOnly?: boolean;
    saveAdapter?: string;
    saveOnnx?: string;
    adapterRank?: number;
    saveModel?: string;
    shardSize?: string;
    evalLabelled?: string[];
    prompt?: string;
    chat?: boolean;
    maxNewTokens?: number;
    skipBadRows?: boolean;
    progress: boolean;
    listMethods?: boolean;
  }>();
  if (o.listMethods) {
    for (const s of listStrategies()) {
      const params = Object.entries(s.params).map(([name, p]) => `  ${describeParam(name, p)}\n`);
      process.stdout.write(
        `${s.name}${s.name === DEFAULT_STRATEGY ? " (default)" : ""} [${s.resultKind}: ${EXPORTS[s.resultKind]}]: ${s.description}\n${params.length > 0 ? params.join("") : "  no hyperparameters\n"}`,
      );
    }
    return 0;
  }
  const outcome = await runSubmit({
    root: findWorkspaceRoot(),
    ...(o.config !== undefined ? { configFile: o.config } : {}),
    ...(o.method !== undefined ? { method: o.method } : {}),
    ...(o.hyper !== undefined ? { hyper: parseHyperFlags(o.hyper) } : {}),
    ...(o.data !== undefined ? { data: o.data } : {}),
    ...(o.out !== undefined ? { out: o.out } : {}),
    ...(o.budget !== undefined ? { budgetSeconds: o.budget } : {}),
    ...(o.evalLabelled !== undefined ? { evalLabelled: o.evalLabelled } : {}),
    ...(o.prompt !== undefined ? { prompt: o.prompt } : {}),
    ...(o.chat !== undefined ? { chat: o.chat } : {}),
    ...(o.maxNewTokens !== undefined ? { maxNewTokens: o.maxNewTokens } : {}),
    mergeOnly: o.mergeOnly ?? false,
    ...(o.saveAdapter !== undefined ? { saveAdapter: o.saveAdapter } : {}),
    ...(o.saveOnnx !== undefined ? { saveOnnx: o.saveOnnx } : {}),
    ...(o.adapterRank !== undefined ? { adapterRank: o.adapterRank } : {}),
    ...(o.saveModel !== undefined ? { saveModel: o.saveModel } : {}),
    ...(o.shardSize !== undefined ? { shardSize: o.shardSize } : {}),
    command: args,
    skipBadRows: o.skipBadRows ?? false,
    progress: o.progress,
    startedAt,
  });
  // Exit 3 and 4 still wrote a complete, valid CSV: a warning, not an error.
  process.stderr.write(`${outcome.exitCode === 0 ? "" : "warning: "}${outcome.message}\n`);
  return outcome.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { text, exitCode } = formatCliError(err, Boolean(process.env.MERGE_DEBUG));
    process.exitCode = exitCode;
    process.stderr.write(text);
  },
);

import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import {
  type ChoiceScorer,
  type CompetitionDataset,
  type EvaluationResult,
  type ProgressSink,
  type TaskMetrics,
  type TextGenerator,
  computeTaskMetrics,
  evaluateDataset,
  metricsMarkdown,
  readCompetitionCsv,
  terminalProgress,
  writePredictionsCsv,
} from "@merge/eval";
import {
  type DeltaSource,
  type ExecutionProvider,
  MistralRunner,
  ONNX_FILE,
  buildOnnxModel,
} from "@merge/mistral-onnx";
import type { MergeContext, ResultKind } from "@merge/strategies";
import { PeftAdapter, SafetensorsCheckpoint, writeFileAtomic } from "@merge/tensor-io";
import { buildDirFor, buildIntoCache, cacheKey, isCachedBuild } from "./cache.js";
import { DEFAULT_CONFIG, type SubmitConfig, loadConfig } from "./config.js";
import { EXIT_BUDGET_CUT, EXIT_ROW_ERRORS, InternalError, SubmitError } from "./errors.js";
import {
  type LoadedExpert,
  type MergePlan,
  type MergeStats,
  checkAllMerged,
  planMerge,
  streamingMergeSource,
} from "./merge.js";
import { PhaseTimer, formatPhaseTable, processPeakRssMiB } from "./phases.js";
import { checkOutputsOutsideSources } from "./outputs.js";
import { buildKeyParts, planRun, type RunOverrides } from "./plan.js";
import { promptPhase } from "./prompt-phase.js";
import { saveOnnxPhase } from "./save-onnx.js";
import {
  checkExportDirs,
  commandLine,
  exportOutputs,
  exportPhase,
  sweepExportTemps,
} from "./export-phase.js";
import type { AdapterTruncation } from "./save-adapter.js";
import { type ModelSource, expandExpertSpecs, resolveModelSource } from "./sources.js";
import { sweepStaleTemps } from "./stale.js";
import type { ResolvedStrategy } from "./strategy.js";
import { resolveFrom } from "./workspace.js";

export interface SubmitOptions extends RunOverrides {
  /** Workspace root: relative paths (flags and config) resolve against it. */
  root: string;
  /** Config file; default configs/embedded.yaml under the root, else the built-in default. */
  configFile?: string;
  skipBadRows?: boolean;
  /** Progress bars (they also need a TTY). */
  progress?: boolean;
  /** Where messages go (default: stderr). */
  log?: (message: string) => void;
  /** When the run began, ms on performance.now(); the budget counts from here. */
  startedAt?: number;
  /** The command-line arguments, for the model card of an export. */
  command?: readonly string[];
}

export interface OutputSummary {
  data: string;
  out: string;
  rows: number;
  answeredByModel: number;
  cutByBudget: number;
  placeholders: number;
  emptyGenerations: number;
  /** Rows the model failed on, answered with fallbacks. */
  rowErrors: number;
}

export interface RunReport {
  configFile: string | null;
  config: SubmitConfig;
  base: Omit<ModelSource, "fingerprint">;
  experts: Array<Omit<ModelSource, "fingerprint">>;
  method: string;
  /** What the method returns: low-rank, dense or routed (see --list-methods). */
  resultKind: ResultKind;
  hyperparameters: Record<string, unknown>;
  modulesMerged: number;
  /**
   * The onnxruntime execution provider the session actually uses (after any fallback from
   * cuda to cpu); null when no model ran (--merge-only).
   */
  executionProvider: ExecutionProvider | null;
  cache: { dir: string; key: string; hit: boolean } | null;
  savedAdapter: string | null;
  /** The --save-model folder, or null. */
  savedModel: string | null;
  /** The --save-onnx folder (transformers.js layout), or null. */
  savedOnnx: string | null;
  /** How well an SVD-truncated --save-adapter holds a dense merge, or null. */
  adapterTruncation: AdapterTruncation | null;
  phases: PhaseTimer["phases"];
  processPeakRssMiB: number;
  budgetSeconds: number;
  totalSeconds: number;
  outputs: OutputSummary[];
  metrics: TaskMetrics[] | null;
  exitCode: number;
  message: string;
}

export interface SubmitOutcome {
  exitCode: number;
  message: string;
  report: RunReport;
}

/** The config file (or configs/embedded.yaml, or the built-in default) before the flags. */
async function loadRunConfig(
  opts: SubmitOptions,
): Promise<{ config: SubmitConfig; file: string | null }> {
  if (opts.configFile !== undefined) {
    const file = resolveFrom(opts.root, opts.configFile);
    return { config: await loadConfig(file), file };
  }
  const embedded = join(opts.root, "configs", "embedded.yaml");
  if (existsSync(embedded)) return { config: await loadConfig(embedded), file: embedded };
  return { config: DEFAULT_CONFIG, file: null };
}

function publicSource({ fingerprint: _f, ...rest }: ModelSource): Omit<ModelSource, "fingerprint"> {
  return rest;
}

/** Thrown from inside merge or build when the budget's deadline has passed. */
class BudgetCut extends Error {
  constructor(readonly where: string) {
    super(`time budget ran out during the ${where}`);
  }
}

/** Stands in for the model after a budget cut; evaluateDataset must never call it then. */
const NO_MODEL: ChoiceScorer & TextGenerator = {
  scoreContinuations: () => Promise.reject(new InternalError(NO_MODEL_MESSAGE)),
  generate: () => Promise.reject(new InternalError(NO_MODEL_MESSAGE)),
};
const NO_MODEL_MESSAGE = "the model was called after the budget ran out in the build";

/** Storage errors an output write can hit, and how to say them. */
const STORAGE_ERRORS: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is exceeded",
  EIO: "an I/O error",
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
};

/**
 * Runs an atomic output write (temporary file, then rename); a storage failure becomes a clear
 * error that names the file and says the previous version is unchanged (the rename never ran).
 */
async function writeOutput(file: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === undefined ? undefined : STORAGE_ERRORS[code];
    if (what === undefined) throw err;
    throw new SubmitError(
      `could not write ${file}: ${what} (${code}). Nothing was replaced: ${existsSync(file) ? "the previous file is unchanged" : "no file was there before"}; free space or pick another --out and run again`,
      1,
      { cause: err, where: { file } },
    );
  }
}

/** Checks the deadline before each module is merged. */
function deadlineSource(source: DeltaSource, check: () => void): DeltaSource {
  return {
    async get(module) {
      check();
      return source.get(module);
    },
  };
}

/** What the plan phase settles: the checked plan, the strategy and the deadline. */
interface Planned {
  runPlan: ReturnType<typeof planRun>;
  strat: ResolvedStrategy;
  /** ms on performance.now(); merge, build and evaluation stop past it. */
  deadline: number;
}

/** One CSV to answer and where its predictions go. */
interface Job {
  dataset: CompetitionDataset;
  out: string;
  labelled: boolean;
}

/** What the run holds open; runSubmit closes it whatever happens. */
interface Held {
  base: SafetensorsCheckpoint | undefined;
  experts: LoadedExpert[];
  runner: MistralRunner | undefined;
}

type Log = (message: string) => void;

/** Plan: every check that needs no model or data file, before anything is read. */
async function planPhase(opts: SubmitOptions, startedAt: number): Promise<Planned> {
  const loaded = await loadRunConfig(opts);
  // The overrides (RunOverrides) pass through as they are; the config file is the one loaded.
  const runPlan = planRun(loaded.config, { ...opts, configFile: loaded.file });
  const strat: ResolvedStrategy = { strategy: runPlan.strategy, hyper: runPlan.hyper };
  // The budget covers merge and evaluation; keep a little back for writing the outputs.
  const budgetMs = runPlan.config.budgetSeconds * 1000;
  const deadline = startedAt + budgetMs - Math.min(30_000, budgetMs * 0.05);
  return { runPlan, strat, deadline };
}

/** Resolve: data first (fail fast on a bad CSV), then models. */
async function resolvePhase(
  runPlan: Planned["runPlan"],
  opts: SubmitOptions,
  timer: PhaseTimer,
  log: Log,
): Promise<{ jobs: Job[]; baseSource: ModelSource; expertSources: ModelSource[] }> {
  const { config } = runPlan;
  const root = opts.root;
  return timer.run(
    "resolve",
    async () => {
      const jobs: Job[] = [];
      if (!runPlan.mergeOnly) {
        const readOpts = {
          skipBadRows: opts.skipBadRows ?? false,
          onWarning: (m: string) => log(m),
        };
        for (const job of runPlan.outputs) {
          const dataset = await readCompetitionCsv(job.input, readOpts);
          if (job.labelled && !dataset.hasTarget) {
            throw new SubmitError(
              `--eval-labelled ${job.spec}: the file has no "target" column`,
              1,
              { where: { file: job.input, column: "target" } },
            );
          }
          jobs.push({ dataset, out: job.out, labelled: job.labelled });
        }
      }
      const baseSource = await resolveModelSource(root, config.base, "base", config.hub, log);
      const expertSpecs = await expandExpertSpecs(root, config.experts);
      const expertSources: ModelSource[] = [];
      for (const spec of expertSpecs) {
        expertSources.push(await resolveModelSource(root, spec, "expert", config.hub, log));
      }
      const w = config.strategy.expertWeights;
      if (w !== undefined && w.length !== expertSources.length) {
        throw new SubmitError(
          `strategy.expertWeights has ${w.length} entries for ${expertSources.length} experts (${expertSources.map((e) => e.label).join(", ")})`,
          1,
          { where: { field: "strategy.expertWeights" } },
        );
      }
      return { jobs, baseSource, expertSources };
    },
    (r) => `base ${r.baseSource.label}, ${r.expertSources.length} experts`,
  );
}

/**
 * Before anything is written: no output may land inside a model source, and temporary files
 * left by killed runs are swept from the output folders.
 */
async function guardOutputsPhase(
  runPlan: Planned["runPlan"],
  opts: SubmitOptions,
  sources: readonly ModelSource[],
  log: Log,
): Promise<void> {
  const { outDir, cacheRoot } = runPlan;
  checkOutputsOutsideSources(
    [
      // --merge-only --save-adapter writes no build; --merge-only --save-onnx builds into the cache.
      ...(opts.mergeOnly && runPlan.saveOnnx === null
        ? []
        : [
            { what: "the output folder", path: outDir },
            { what: "the build cache", path: cacheRoot },
          ]),
      ...exportOutputs(runPlan.exports),
      ...(runPlan.saveOnnx !== null ? [{ what: "--save-onnx", path: runPlan.saveOnnx }] : []),
    ],
    sources.map((s) => ({ label: s.label, dir: s.dir })),
  );
  await checkExportDirs(runPlan.exports);
  const swept = [
    ...(await sweepStaleTemps([
      outDir,
      cacheRoot,
      ...(runPlan.saveOnnx !== null ? [runPlan.saveOnnx, join(runPlan.saveOnnx, "onnx")] : []),
    ])),
    ...(await sweepExportTemps(runPlan.exports)),
  ];
  if (swept.length > 0) {
    log(
      `removed ${swept.length} temporary file${swept.length > 1 ? "s" : ""} left by killed runs: ${swept.join(", ")}`,
    );
  }
}

/** Load: open base and adapters (into `held`), check every expert against the base. */
async function loadPhase(
  baseSource: ModelSource,
  expertSources: readonly ModelSource[],
  held: Held,
  timer: PhaseTimer,
  log: Log,
): Promise<MergePlan> {
  const { plan } = await timer.run(
    "load",
    async () => {
      const base = await SafetensorsCheckpoint.open(baseSource.dir);
      held.base = base;
      for (const s of expertSources) {
        const adapter = await PeftAdapter.open(s.dir);
        held.experts.push({ label: s.label, adapter });
        const ignored = adapter.ignoredModules();
        if (ignored.length > 0) {
          log(
            `warning: expert ${s.label}: ${ignored.length} module${ignored.length > 1 ? "s have" : " has"} LoRA factors that target_modules ${JSON.stringify(adapter.config.targetModules)} does not name; PEFT ignores them and so does this merge (${ignored.slice(0, 3).join(", ")}${ignored.length > 3 ? ", …" : ""})`,
          );
        }
      }
      const plan = await planMerge(base, baseSource.label, held.experts);
      return { plan };
    },
    (r) => `${r.plan.size} modules to merge`,
  );
  return plan;
}

/** The report before merging: what was asked for and resolved; later phases fill in the rest. */
function initialReport(
  planned: Planned,
  baseSource: ModelSource,
  expertSources: readonly ModelSource[],
  timer: PhaseTimer,
): RunReport {
  const { config, configFile } = planned.runPlan;
  const { strat } = planned;
  return {
    configFile,
    config,
    base: publicSource(baseSource),
    experts: expertSources.map(publicSource),
    method: strat.strategy.name,
    resultKind: strat.strategy.resultKind,
    hyperparameters: strat.hyper,
    modulesMerged: 0,
    executionProvider: null,
    cache: null,
    savedAdapter: null,
    savedModel: null,
    savedOnnx: null,
    adapterTruncation: null,
    phases: timer.phases,
    processPeakRssMiB: 0,
    budgetSeconds: config.budgetSeconds,
    totalSeconds: 0,
    outputs: [],
    metrics: null,
    exitCode: 0,
    message: "",
  };
}

/** What the build phase leaves for the runtime phase. */
interface Built {
  buildDir: string;
  hit: boolean;
  /** performance.now() when the build phase began. */
  buildStart: number;
  /** Peak RSS of merge+build, MiB (0 on a cache hit). */
  buildPeak: number;
  stats: MergeStats;
  /** Where the budget ran out (then no model runs), or null. */
  budgetCutIn: string | null;
}

/**
 * Merge + build: merging streams into the ONNX weight writer, module by module, into the build
 * cache (or the cached build is reused). Past the deadline it stops with a budget cut.
 */
async function buildPhase(
  planned: Planned,
  baseSource: ModelSource,
  expertSources: readonly ModelSource[],
  plan: MergePlan,
  experts: readonly LoadedExpert[],
  ctx: MergeContext,
  report: RunReport,
  opts: SubmitOptions,
  timer: PhaseTimer,
  log: Log,
): Promise<Built> {
  const { runPlan, strat, deadline } = planned;
  const { config, cacheRoot } = runPlan;
  const stats: MergeStats = { modules: 0, ms: 0 };
  const keyParts = buildKeyParts(
    runPlan.keySettings,
    baseSource.fingerprint,
    expertSources.map((e) => e.fingerprint),
  );
  const key = cacheKey(keyParts);
  const buildDir = buildDirFor(cacheRoot, key);
  const hit = isCachedBuild(buildDir);
  report.cache = { dir: buildDir, key, hit };
  const buildStart = performance.now();
  let buildPeak = 0;
  // The budget covers merge and build too: past the deadline they stop, and every row gets its
  // fallback answer (a complete CSV, exit 3) instead of the run overrunning its budget.
  const checkDeadline = (where: string) => {
    if (performance.now() > deadline) throw new BudgetCut(where);
  };
  let budgetCutIn: string | null = null;
  if (hit) {
    log(`using the cached ONNX build ${buildDir}`);
  } else {
    try {
      await timer.run("merge+build", async () => {
        await buildIntoCache(buildDir, keyParts, async (tmp) => {
          let lastTenth = -1;
          let bar: ProgressSink | null | undefined;
          await buildOnnxModel({
            modelDir: baseSource.dir,
            outDir: tmp,
            deltas: deadlineSource(
              streamingMergeSource(plan, experts, strat.strategy, strat.hyper, ctx, stats),
              () => checkDeadline("merge"),
            ),
            deltaMode: config.runtime.deltaMode,
            dtype: config.runtime.dtype,
            weightQuant: config.runtime.weightQuant,
            fusedOps: config.runtime.fusedOps,
            onProgress: (done, total, what) => {
              checkDeadline("ONNX build");
              if (opts.progress === false) return;
              if (bar === undefined) {
                bar = process.stderr.isTTY
                  ? terminalProgress(process.stderr, "merge+build", "tensors")
                  : null;
                bar?.start(total, what);
              }
              if (bar) {
                bar.update(done, what);
                if (done === total) bar.stop();
                return;
              }
              // Not a terminal: a line every tenth, with the time so far and an estimate of the rest.
              const tenth = Math.floor((10 * done) / Math.max(total, 1));
              if (tenth !== lastTenth) {
                lastTenth = tenth;
                const spent = (performance.now() - buildStart) / 1000;
                const left = done > 0 ? (spent * (total - done)) / done : Number.NaN;
                log(
                  `build: ${done}/${total} tensors, ${spent.toFixed(1)} s elapsed${done < total && Number.isFinite(left) ? `, about ${left.toFixed(0)} s left` : ""}`,
                );
              }
            },
          });
          // Inside the build, so a partly merged model is never marked as a finished build.
          checkAllMerged(plan, stats);
        });
      });
      // Merging ran inside the build; split the combined phase into its two parts.
      const combined = timer.phases.pop()!;
      buildPeak = combined.peakRssMiB;
      const mergeSeconds = stats.ms / 1000;
      timer.add({
        name: "merge",
        seconds: mergeSeconds,
        peakRssMiB: buildPeak,
        note: `${stats.modules} modules, streamed into the ONNX build (peak shared with build)`,
      });
      report.modulesMerged = stats.modules;
    } catch (err) {
      if (!(err instanceof BudgetCut)) throw err;
      budgetCutIn = err.where;
      timer.phases.pop();
      report.modulesMerged = stats.modules;
      log(
        `warning: the time budget ran out during the ${err.where} (${stats.modules} of ${plan.size} modules merged); every row gets its fallback answer`,
      );
    }
  }
  return { buildDir, hit, buildStart, buildPeak, stats, budgetCutIn };
}

/** Build runtime: the onnxruntime session over the built model (its phase also counts the build). */
async function runtimePhase(
  built: Built,
  baseSource: ModelSource,
  config: SubmitConfig,
  report: RunReport,
  timer: PhaseTimer,
  log: Log,
): Promise<MistralRunner> {
  const { buildDir, hit, buildStart, buildPeak, stats } = built;
  const buildSecondsSoFar = (performance.now() - buildStart) / 1000 - stats.ms / 1000;
  const onnxPath = join(buildDir, ONNX_FILE);
  const runner = await timer.run("build runtime", () =>
    MistralRunner.create({
      onnxPath,
      modelDir: baseSource.dir,
      executionProvider: config.runtime.executionProvider,
      choiceTokenization: config.runtime.choiceTokenization,
      choiceScoring: config.runtime.choiceScoring,
      generationGraph: config.runtime.generationGraph,
      ...(config.runtime.threads !== undefined ? { threads: config.runtime.threads } : {}),
    }),
  );
  const rt = timer.phases.at(-1)!;
  rt.seconds += buildSecondsSoFar;
  rt.peakRssMiB = Math.max(rt.peakRssMiB, buildPeak);
  rt.note = `${hit ? "ONNX build cached" : "ONNX build + session"}, ${runner.executionProvider}`;
  report.executionProvider = runner.executionProvider;
  if (runner.executionProvider !== config.runtime.executionProvider) {
    log(
      `warning: execution provider ${config.runtime.executionProvider} is not available, running on ${runner.executionProvider}`,
    );
  }
  return runner;
}

/**
 * Evaluate every job. After a budget cut in merge/build the deadline has passed, so no row
 * reaches the model and every row gets its fallback; the NO_MODEL stub only guards that.
 */
async function evaluatePhase(
  jobs: readonly Job[],
  runner: MistralRunner | undefined,
  config: SubmitConfig,
  deadline: number,
  opts: SubmitOptions,
  timer: PhaseTimer,
): Promise<EvaluationResult[]> {
  const r = runner ?? NO_MODEL;
  return timer.run(
    "evaluate",
    async () => {
      const out: EvaluationResult[] = [];
      for (const job of jobs) {
        out.push(
          await evaluateDataset(job.dataset.entries, {
            scorer: r,
            generator: r,
            choiceScore: config.runtime.choiceScore,
            maxNewTokens: config.runtime.maxNewTokens,
            generationBatchSize: config.runtime.generationBatchSize,
            ...(config.runtime.stop ? { stop: config.runtime.stop } : {}),
            deadline,
            now: () => performance.now(),
            progress: opts.progress ?? true,
            // A failure on one row must not cost the whole hour: answer it with the fallback,
            // report it, and exit non-zero.
            onRowError: "fallback",
          }),
        );
      }
      return out;
    },
    (res) => `${res.reduce((n, x) => n + x.predictions.length, 0)} rows`,
  );
}

/** The metrics of one labelled job: one line per task (a `task` column), else one line. */
function jobMetrics(job: Job, res: EvaluationResult): TaskMetrics[] {
  const metrics: TaskMetrics[] = [];
  const rows = job.dataset.entries.flatMap((e) => (e.kind === "ok" ? [e.row] : []));
  const name = basename(job.out, ".csv");
  const tasks = [...new Set(rows.flatMap((r) => (r.task === undefined ? [] : [r.task])))];
  if (tasks.length === 0) metrics.push(computeTaskMetrics(name, rows, res.predictions));
  for (const t of tasks.sort()) {
    metrics.push(
      computeTaskMetrics(
        `${name}/${t}`,
        rows.filter((r) => r.task === t),
        res.predictions,
      ),
    );
  }
  const untasked = rows.filter((r) => r.task === undefined);
  if (tasks.length > 0 && untasked.length > 0) {
    metrics.push(computeTaskMetrics(`${name}/(no task)`, untasked, res.predictions));
  }
  return metrics;
}

/** Write the predictions CSVs (and metrics.md for labelled files); fills report.outputs/metrics. */
async function writePhase(
  jobs: readonly Job[],
  results: readonly EvaluationResult[],
  outDir: string,
  report: RunReport,
  timer: PhaseTimer,
  log: Log,
): Promise<void> {
  await timer.run("write", async () => {
    const metrics: TaskMetrics[] = [];
    for (const [i, job] of jobs.entries()) {
      const res = results[i]!;
      await writeOutput(job.out, () => writePredictionsCsv(job.out, res.predictions));
      report.outputs.push({
        data: job.dataset.file,
        out: job.out,
        rows: res.predictions.length,
        answeredByModel: res.predictions.filter((p) => p.source === "model").length,
        cutByBudget: res.cutByBudget,
        placeholders: res.placeholders,
        emptyGenerations: res.emptyGenerations,
        rowErrors: res.rowErrors.length,
      });
      for (const e of res.rowErrors.slice(0, 5)) {
        log(
          `warning: ${job.dataset.file}: row ${e.row} (id ${JSON.stringify(e.id)}) failed in the model: ${e.message}`,
        );
      }
      if (job.labelled) metrics.push(...jobMetrics(job, res));
    }
    if (metrics.length > 0) {
      report.metrics = metrics;
      const metricsFile = join(outDir, "metrics.md");
      await writeOutput(metricsFile, () =>
        writeFileAtomic(metricsFile, metricsMarkdown({ tasks: metrics })),
      );
    }
  });
}

/** Exit policy: 3 when the budget cut rows, else 4 when the model failed on rows, else 0. */
function exitPolicy(
  outputs: readonly OutputSummary[],
  budgetSeconds: number,
): { exitCode: number; message: string } {
  const cut = outputs.reduce((n, o) => n + o.cutByBudget, 0);
  const rows = outputs.reduce((n, o) => n + o.rows, 0);
  const errors = outputs.reduce((n, o) => n + o.rowErrors, 0);
  if (errors > 0 || cut > 0) {
    const parts: string[] = [];
    if (errors > 0) {
      parts.push(
        `${errors} of ${rows} rows failed in the model and were answered with fallback predictions (see the warnings above)`,
      );
    }
    if (cut > 0) {
      parts.push(
        `the time budget of ${budgetSeconds} s ran out: ${cut} of ${rows} rows were cut and answered with fallback predictions`,
      );
    }
    // A cut budget is the stronger signal (exit 3); the CSV is complete either way.
    return {
      exitCode: cut > 0 ? EXIT_BUDGET_CUT : EXIT_ROW_ERRORS,
      message: `${parts.join("; ")}. The CSV is complete and valid.`,
    };
  }
  const written = outputs.map((o) => o.out).join(", ");
  return { exitCode: 0, message: `wrote ${rows} predictions to ${written}` };
}

/** Runs plan → resolve → load → merge + build → build runtime → evaluate → write. */
export async function runSubmit(opts: SubmitOptions): Promise<SubmitOutcome> {
  const startedAt = opts.startedAt ?? performance.now();
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const timer = new PhaseTimer();
  const planned = await planPhase(opts, startedAt);
  const { runPlan, strat, deadline } = planned;
  const { config, outDir } = runPlan;
  const held: Held = { base: undefined, experts: [], runner: undefined };
  try {
    const { jobs, baseSource, expertSources } = await resolvePhase(runPlan, opts, timer, log);
    await guardOutputsPhase(runPlan, opts, [baseSource, ...expertSources], log);
    const plan = await loadPhase(baseSource, expertSources, held, timer, log);
    const ctx: MergeContext = {
      seed: config.seed,
      ...(config.strategy.expertWeights ? { expertWeights: config.strategy.expertWeights } : {}),
    };
    const report = initialReport(planned, baseSource, expertSources, timer);
    const end = (o: { exitCode: number; message: string }) =>
      finish(report, timer, startedAt, outDir, o.exitCode, o.message, log);

    if (runPlan.mergeOnly && runPlan.saveOnnx === null) {
      const saved = await exportPhase(
        {
          exports: runPlan.exports,
          plan,
          experts: held.experts,
          strat,
          ctx,
          config,
          base: held.base!,
          baseSource,
          expertSources,
          command: commandLine(opts.command),
        },
        timer,
        log,
      );
      report.savedAdapter = saved.savedAdapter;
      report.savedModel = saved.savedModel;
      report.adapterTruncation = saved.adapterTruncation;
      report.modulesMerged = saved.modulesMerged;
      return await end({ exitCode: 0, message: saved.message });
    }
    const built = await buildPhase(
      planned,
      baseSource,
      expertSources,
      plan,
      held.experts,
      ctx,
      report,
      opts,
      timer,
      log,
    );
    if (runPlan.saveOnnx !== null) {
      if (built.budgetCutIn !== null) {
        const cut = `--save-onnx: the time budget ran out during the ${built.budgetCutIn}, so there is no complete model to export`;
        if (runPlan.mergeOnly) throw new SubmitError(cut, EXIT_BUDGET_CUT);
        log(`warning: ${cut}`);
      } else {
        const message = await saveOnnxPhase(
          runPlan.saveOnnx,
          built.buildDir,
          baseSource.dir,
          timer,
        );
        report.savedOnnx = runPlan.saveOnnx;
        if (runPlan.mergeOnly) return await end({ exitCode: 0, message });
        log(message);
      }
    }
    if (built.budgetCutIn === null) {
      held.runner = await runtimePhase(built, baseSource, config, report, timer, log);
    }
    if (runPlan.promptMode !== null) {
      // --prompt / --chat: answered on the terminal; no CSV, no report.json.
      const o = await promptPhase(
        runPlan.promptMode,
        held.runner,
        built.budgetCutIn,
        baseSource.dir,
        config,
        log,
      );
      return { ...o, report: { ...report, phases: timer.phases, ...o } };
    }
    const results = await evaluatePhase(jobs, held.runner, config, deadline, opts, timer);
    await writePhase(jobs, results, outDir, report, timer, log);
    return await end(exitPolicy(report.outputs, config.budgetSeconds));
  } finally {
    await held.runner?.close().catch(() => {});
    for (const e of held.experts) await e.adapter.close().catch(() => {});
    await held.base?.close().catch(() => {});
  }
}

async function finish(
  report: RunReport,
  timer: PhaseTimer,
  startedAt: number,
  outDir: string,
  exitCode: number,
  message: string,
  log: (m: string) => void,
): Promise<SubmitOutcome> {
  report.phases = timer.phases;
  report.processPeakRssMiB = processPeakRssMiB();
  report.totalSeconds = (performance.now() - startedAt) / 1000;
  report.exitCode = exitCode;
  report.message = message;
  const reportFile = join(outDir, "report.json");
  await writeOutput(reportFile, () =>
    writeFileAtomic(reportFile, `${JSON.stringify(report, null, 2)}\n`),
  );
  log("");
  log(formatPhaseTable(timer.phases));
  log(
    `total ${report.totalSeconds.toFixed(2)} s, process peak RSS ${report.processPeakRssMiB} MiB${
      report.executionProvider !== null ? `, execution provider ${report.executionProvider}` : ""
    }`,
  );
  if (report.metrics) log(`\n${metricsMarkdown({ tasks: report.metrics })}`);
  log(`report: ${join(outDir, "report.json")}`);
  return { exitCode, message, report };
}

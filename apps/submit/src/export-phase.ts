import { basename, dirname } from "node:path";
import type { MergeContext } from "@merge/strategies";
import type { SafetensorsCheckpoint } from "@merge/tensor-io";
import type { SubmitConfig } from "./config.js";
import { checkExportDir } from "./export-dir.js";
import type { ExportPlan } from "./export-plan.js";
import type { LoadedExpert, MergePlan, MergeStats } from "./merge.js";
import {
  type CardSource,
  type ModelCardInput,
  baseModelId,
  renderModelCard,
  shellQuote,
  submitVersion,
} from "./model-card.js";
import type { PhaseTimer } from "./phases.js";
import { codeVersions } from "./plan.js";
import { type AdapterTruncation, saveMergedAdapter } from "./save-adapter.js";
import { saveMergedModel } from "./save-model.js";
import { sweepStaleTemps } from "./stale.js";
import type { ResolvedStrategy } from "./strategy.js";

/** How the command that made an export is shown in its model card. */
export function commandLine(args: readonly string[] | undefined): string {
  if (args === undefined) return "(runSubmit called from code, not the command line)";
  return ["pnpm", "--filter", "submit", "start", "--", ...args].map(shellQuote).join(" ");
}

/** The output folders of the exports, for the checks before anything is written. */
export function exportOutputs(exports: ExportPlan): Array<{ what: string; path: string }> {
  return [
    ...(exports.saveAdapter !== null
      ? [{ what: "--save-adapter", path: exports.saveAdapter }]
      : []),
    ...(exports.saveModel !== null ? [{ what: "--save-model", path: exports.saveModel }] : []),
  ];
}

/**
 * Removes what killed runs left of the exports: temporaries inside an export folder, and the
 * hidden temporary siblings publishExportDir writes (only those named after the export, so
 * nothing else in the parent folder is touched).
 */
export async function sweepExportTemps(exports: ExportPlan): Promise<string[]> {
  const removed: string[] = [];
  for (const { path } of exportOutputs(exports)) {
    removed.push(...(await sweepStaleTemps([path])));
    const prefix = `.${basename(path)}.`;
    removed.push(...(await sweepStaleTemps([dirname(path)], (n) => n.startsWith(prefix))));
  }
  return removed;
}

/** Refuses an export folder that holds files an export would not write (checkExportDir). */
export async function checkExportDirs(exports: ExportPlan): Promise<void> {
  if (exports.saveAdapter !== null) {
    await checkExportDir(exports.saveAdapter, "adapter", "--save-adapter");
  }
  if (exports.saveModel !== null) await checkExportDir(exports.saveModel, "model", "--save-model");
}

/** What the run knows that the exports need. */
export interface ExportInputs {
  exports: ExportPlan;
  plan: MergePlan;
  experts: readonly LoadedExpert[];
  strat: ResolvedStrategy;
  ctx: MergeContext;
  config: SubmitConfig;
  base: SafetensorsCheckpoint;
  baseSource: CardSource;
  expertSources: readonly CardSource[];
  command: string;
}

/** What the exports report. */
export interface ExportResult {
  savedAdapter: string | null;
  savedModel: string | null;
  adapterTruncation: AdapterTruncation | null;
  modulesMerged: number;
  message: string;
}

/**
 * --merge-only: writes --save-adapter and/or --save-model, each with its model card. Each
 * export merges the modules itself (the merge is deterministic), so only one module's result
 * is alive at a time.
 */
export async function exportPhase(
  x: ExportInputs,
  timer: PhaseTimer,
  log: (m: string) => void,
): Promise<ExportResult> {
  const cardBase: Omit<ModelCardInput, "kind"> = {
    base: x.baseSource,
    experts: x.expertSources,
    method: x.strat.strategy.name,
    resultKind: x.strat.strategy.resultKind,
    hyperparameters: x.strat.hyper,
    seed: x.config.seed,
    expertWeights: x.config.strategy.expertWeights ?? null,
    versions: { submit: submitVersion(), ...codeVersions() },
    command: x.command,
  };
  const out: ExportResult = {
    savedAdapter: null,
    savedModel: null,
    adapterTruncation: null,
    modulesMerged: 0,
    message: "",
  };
  const said: string[] = [];
  const { saveAdapter, saveModel } = x.exports;
  if (saveAdapter !== null) {
    const stats: MergeStats = { modules: 0, ms: 0 };
    const saved = await timer.run(
      "merge",
      () =>
        saveMergedAdapter(
          saveAdapter,
          x.plan,
          x.experts,
          x.strat,
          x.ctx,
          {
            base: {
              nameOrPath: baseModelId(x.baseSource),
              ...(x.baseSource.kind === "hub" && x.baseSource.commit !== undefined
                ? { revision: x.baseSource.commit }
                : {}),
            },
            adapterRank: x.exports.adapterRank,
            card: (truncation) =>
              renderModelCard({
                ...cardBase,
                kind: "adapter",
                truncation:
                  truncation === undefined
                    ? undefined
                    : { rank: truncation.rank, relativeError: truncation.relativeError },
              }),
          },
          stats,
        ),
      (r) => `${r.modules} modules, max rank ${r.maxRank}`,
    );
    out.savedAdapter = saveAdapter;
    out.modulesMerged = stats.modules;
    if (saved.truncation !== undefined) {
      out.adapterTruncation = saved.truncation;
      const worst = saved.truncation.modules.reduce(
        (a, b) => (b.relativeError > a.relativeError ? b : a),
        { module: "(none)", relativeError: 0 },
      );
      log(
        `--save-adapter: rank-${saved.truncation.rank} SVD truncation of the dense merge: relative Frobenius error ${saved.truncation.relativeError.toPrecision(4)} overall, worst ${worst.relativeError.toPrecision(4)} (${worst.module}); per module in report.json`,
      );
    }
    said.push(
      `merged adapter written to ${saveAdapter} (${saved.modules} modules${
        saved.truncation
          ? `, rank-${saved.truncation.rank} SVD truncation, relative error ${saved.truncation.relativeError.toPrecision(4)}`
          : ""
      })`,
    );
  }
  if (saveModel !== null) {
    const stats: MergeStats = { modules: 0, ms: 0 };
    const saved = await timer.run(
      "merge+write model",
      () =>
        saveMergedModel(
          saveModel,
          x.plan,
          x.experts,
          x.strat,
          x.ctx,
          x.base,
          {
            baseDir: x.baseSource.dir,
            maxShardBytes: x.exports.maxShardBytes,
            card: renderModelCard({ ...cardBase, kind: "model" }),
          },
          stats,
        ),
      (r) => `${r.modules} merged modules, ${r.tensors} tensors`,
    );
    out.savedModel = saveModel;
    out.modulesMerged = stats.modules;
    said.push(`merged model written to ${saveModel} (${saved.modules} merged modules)`);
  }
  out.message = said.join("; ");
  return out;
}

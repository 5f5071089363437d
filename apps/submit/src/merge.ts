import { type LoraModule, loraModuleFromPeft } from "@merge/lora";
import {
  DELTA_PROJECTIONS,
  type DeltaSource,
  type WeightDelta,
  isDeltaTarget,
} from "@merge/mistral-onnx";
import type { MergeContext, MergeResult, StrategyDefinition } from "@merge/strategies";
import type { PeftAdapter, SafetensorsCheckpoint } from "@merge/tensor-io";
import { ExpertMismatchError, InternalError, SubmitError } from "./errors.js";

export interface LoadedExpert {
  label: string;
  adapter: PeftAdapter;
}

/** Weight shape of one base module: the delta for it is out × in. */
export interface ModuleShape {
  outFeatures: number;
  inFeatures: number;
}

/** Every module some expert adapts, sorted, with the base weight's shape. */
export type MergePlan = Map<string, ModuleShape>;

/** Base weight shape of `module` from `<module>.weight`, or undefined when absent / not 2-D. */
function baseShape(base: SafetensorsCheckpoint, module: string): ModuleShape | undefined {
  const name = `${module}.weight`;
  if (!base.has(name)) return undefined;
  const shape = base.info(name).shape;
  if (shape.length !== 2) return undefined;
  return { outFeatures: shape[0]!, inFeatures: shape[1]! };
}

async function readLora(expert: LoadedExpert, module: string): Promise<LoraModule> {
  const t = await expert.adapter.readModule(module);
  const cfg = expert.adapter.config;
  try {
    return loraModuleFromPeft(t, { useRslora: cfg.useRslora, fanInFanOut: cfg.fanInFanOut });
  } catch (err) {
    throw new ExpertMismatchError(
      `expert ${expert.label}: module ${module}: ${(err as Error).message}`,
      { module },
    );
  }
}

function listSome(items: readonly string[], n = 5): string {
  const head = items.slice(0, n).join(", ");
  return items.length > n ? `${head} (and ${items.length - n} more)` : head;
}

/**
 * Checks every expert against the base: each adapted module must be one the ONNX build applies
 * deltas to (a decoder projection, see DELTA_PROJECTIONS), exist in the base as a 2-D
 * `<module>.weight`, and its LoRA factors must give an out × in delta of the same shape. An
 * adapter with other tensors (modules_to_save copies) is refused: they would be dropped.
 * Uses the adapters' headers only, so errors come before any tensor is read.
 */
export async function planMerge(
  base: SafetensorsCheckpoint,
  baseLabel: string,
  experts: readonly LoadedExpert[],
): Promise<MergePlan> {
  const plan: MergePlan = new Map();
  for (const expert of experts) {
    const modules = expert.adapter.modules();
    if (modules.length === 0) {
      throw new ExpertMismatchError(`expert ${expert.label}: the adapter has no LoRA modules`);
    }
    // Anything the model cannot take would be dropped silently and the run would still exit 0.
    const other = expert.adapter.otherTensors();
    if (other.length > 0) {
      throw new ExpertMismatchError(
        `expert ${expert.label}: the adapter holds ${other.length} tensor${other.length > 1 ? "s that are" : " that is"} not LoRA factors (modules_to_save or similar), which merging cannot carry over: ${listSome(other)}`,
      );
    }
    const untargetable = modules.filter((m) => !isDeltaTarget(m));
    if (untargetable.length > 0) {
      throw new ExpertMismatchError(
        `expert ${expert.label}: LoRA on module${untargetable.length > 1 ? "s" : ""} ${listSome(untargetable)} cannot be merged: only the decoder projections (model.layers.N.{${DELTA_PROJECTIONS.join(",")}}) take deltas`,
      );
    }
    const unknown = modules.filter((m) => baseShape(base, m) === undefined);
    if (unknown.length > 0) {
      throw new ExpertMismatchError(
        `expert ${expert.label} does not match base ${baseLabel}: ${unknown.length} module${unknown.length > 1 ? "s" : ""} not in the base (no 2-D <module>.weight): ${listSome(unknown)}`,
      );
    }
    for (const m of modules) {
      const want = baseShape(base, m)!;
      // Header shapes suffice: PeftAdapter.open already checked A (r × in) against B (out × r).
      const info = expert.adapter.moduleInfo(m);
      const [outFeatures, inFeatures] = [info.bShape[0], info.aShape[1]];
      if (outFeatures !== want.outFeatures || inFeatures !== want.inFeatures) {
        throw new ExpertMismatchError(
          `expert ${expert.label} does not match base ${baseLabel}: module ${m} gives a ${outFeatures}×${inFeatures} delta (rank ${info.rank}), the base weight is ${want.outFeatures}×${want.inFeatures}`,
          { module: m },
        );
      }
      plan.set(m, want);
    }
  }
  return new Map([...plan.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface MergeStats {
  modules: number;
  ms: number;
}

/** Merges one module: each expert's LoRA (or null when it lacks the module) → strategy. */
export async function mergeModule(
  module: string,
  shape: ModuleShape,
  experts: readonly LoadedExpert[],
  strategy: StrategyDefinition<Record<string, unknown>>,
  hyper: Record<string, unknown>,
  ctx: MergeContext,
): Promise<MergeResult> {
  const loras: Array<LoraModule | null> = [];
  for (const e of experts) {
    loras.push(e.adapter.hasModule(module) ? await readLora(e, module) : null);
  }
  const result = strategy.merge(
    { module, outFeatures: shape.outFeatures, inFeatures: shape.inFeatures, experts: loras },
    hyper,
    ctx,
  );
  checkResult(module, shape, result, strategy.name, experts.length);
  return result;
}

function checkResult(
  module: string,
  shape: ModuleShape,
  r: MergeResult,
  method: string,
  experts: number,
): void {
  const { outFeatures: out, inFeatures: inF } = shape;
  const ok =
    r.outFeatures === out &&
    r.inFeatures === inF &&
    (r.kind === "dense"
      ? r.delta.length === out * inF
      : r.kind === "routed"
        ? r.experts.length === experts &&
          r.experts.every(
            (e) => e === null || (e.A.length === e.rank * inF && e.B.length === out * e.rank),
          )
        : r.A.length === r.rank * inF && r.B.length === out * r.rank);
  if (!ok) {
    throw new SubmitError(
      `strategy ${method} returned a ${r.kind} result of the wrong size for ${module} (expected ${out}×${inF})`,
      1,
      { where: { module } },
    );
  }
}

/**
 * After a build: every planned module must have been asked for exactly once. A mismatch means
 * the builder and the plan disagree about which modules take deltas (a merged module dropped).
 */
export function checkAllMerged(plan: MergePlan, stats: MergeStats): void {
  if (stats.modules !== plan.size) {
    throw new InternalError(
      `the ONNX build applied ${stats.modules} merged module${stats.modules === 1 ? "" : "s"}, the merge plan has ${plan.size}; refusing to answer with a partly merged model`,
    );
  }
}

export function toWeightDelta(r: MergeResult): WeightDelta {
  if (r.kind === "routed") return { kind: "routed", experts: r.experts, router: r.router };
  return r.kind === "dense"
    ? { kind: "dense", delta: r.delta }
    : { kind: "lowrank", A: r.A, B: r.B, rank: r.rank };
}

/**
 * A DeltaSource that merges each module when the ONNX builder asks for it, so merging streams
 * with the weight writing and only one module's factors and result are alive at a time.
 */
export function streamingMergeSource(
  plan: MergePlan,
  experts: readonly LoadedExpert[],
  strategy: StrategyDefinition<Record<string, unknown>>,
  hyper: Record<string, unknown>,
  ctx: MergeContext,
  stats: MergeStats,
): DeltaSource {
  return {
    async get(module: string): Promise<WeightDelta | undefined> {
      const shape = plan.get(module);
      if (shape === undefined) return undefined;
      const t0 = performance.now();
      const result = await mergeModule(module, shape, experts, strategy, hyper, ctx);
      stats.ms += performance.now() - t0;
      stats.modules++;
      return toWeightDelta(result);
    },
  };
}

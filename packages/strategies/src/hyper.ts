import {
  type MergeContext,
  type ModuleMergeInput,
  type MergeResult,
  type ResultKind,
  type StrategyDefinition,
  StrategyError,
} from "./types.js";

/** Allowed values of a string hyperparameter (others are checked by their default's type). */
export type Choices<H> = { [K in keyof H]?: readonly string[] };

/**
 * Fills missing hyperparameters from the defaults and rejects unknown names, wrong types and
 * values outside `choices`, so a typo in a config file fails loudly instead of merging with a
 * silent default.
 */
export function resolveHyper<H extends Record<string, unknown>>(
  strategy: string,
  defaults: H,
  given: Partial<Record<string, unknown>> | undefined,
  choices: Choices<H> = {},
): H {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(given ?? {})) {
    if (!(key in defaults)) {
      throw new StrategyError(
        `strategy "${strategy}" has no hyperparameter "${key}" (known: ${Object.keys(defaults).join(", ") || "none"})`,
      );
    }
    if (value === undefined) continue;
    const expected = typeof defaults[key];
    if (typeof value !== expected || (expected === "number" && !Number.isFinite(value as number))) {
      throw new StrategyError(
        `strategy "${strategy}": hyperparameter "${key}" must be a finite ${expected}, got ${JSON.stringify(value)}`,
      );
    }
    const allowed = choices[key as keyof H];
    if (allowed !== undefined && !allowed.includes(value as string)) {
      throw new StrategyError(
        `strategy "${strategy}": hyperparameter "${key}" must be one of ${allowed.join(", ")}, got "${String(value)}"`,
      );
    }
    out[key] = value;
  }
  return out as H;
}

/** Throws unless lo ≤ value ≤ hi (or lo ≤ value < hi when `openHigh`). */
export function checkRange(
  strategy: string,
  key: string,
  value: number,
  lo: number,
  hi: number,
  openHigh = false,
): void {
  if (value < lo || (openHigh ? value >= hi : value > hi)) {
    throw new StrategyError(
      `strategy "${strategy}": hyperparameter "${key}" must be in [${lo}, ${hi}${openHigh ? ")" : "]"}, got ${value}`,
    );
  }
}

/**
 * Throws unless 0 < density ≤ 1: density 0 would keep no entries and silently merge to zero,
 * which is never what a config meant.
 */
export function checkDensity(strategy: string, density: number): void {
  if (!(density > 0 && density <= 1)) {
    throw new StrategyError(
      `strategy "${strategy}": hyperparameter "density" must be in (0, 1], got ${density}`,
    );
  }
}

/** Throws unless `rank` is a non-negative integer (0 = each strategy's default rank). */
export function checkRankHyper(strategy: string, rank: number): void {
  if (!Number.isInteger(rank) || rank < 0) {
    throw new StrategyError(
      `strategy "${strategy}": hyperparameter "rank" must be a non-negative integer, got ${rank}`,
    );
  }
}

/** A registry entry whose merge validates its hyperparameters and input before running. */
export function defineStrategy<H extends Record<string, unknown>>(spec: {
  name: string;
  description: string;
  reference?: string;
  defaults: H;
  resultKind: ResultKind;
  choices?: Choices<H>;
  validate?: (hyper: H) => void;
  run: (input: ModuleMergeInput, hyper: H, ctx: MergeContext) => MergeResult;
}): StrategyDefinition<H> {
  const { name, description, reference, defaults, resultKind, choices, validate, run } = spec;
  return {
    name,
    description,
    ...(reference === undefined ? {} : { reference }),
    defaults: Object.freeze({ ...defaults }) as H,
    resultKind,
    merge(input, hyper, ctx) {
      const resolved = resolveHyper(name, defaults, hyper, choices);
      validate?.(resolved);
      validateInput(input, ctx);
      return run(input, resolved, ctx);
    },
  };
}

function validateInput(input: ModuleMergeInput, ctx: MergeContext): void {
  const { module, outFeatures: m, inFeatures: n, experts } = input;
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 0 || n < 0) {
    throw new StrategyError(`shape ${m}×${n} is not a pair of non-negative integers`, module);
  }
  if (experts.length === 0) {
    // All-null slots are a valid "no expert has this module" (zero result); no slots at all
    // means the caller lost its expert list, so fail instead of returning zero.
    throw new StrategyError("expert list is empty (expected one slot per expert)", module);
  }
  experts.forEach((e, i) => {
    if (e === null) return;
    if (e.outFeatures !== m || e.inFeatures !== n) {
      throw new StrategyError(
        `expert ${i} is ${e.outFeatures}×${e.inFeatures}, expected ${m}×${n}`,
        module,
      );
    }
    if (e.A.length !== e.rank * n || e.B.length !== m * e.rank) {
      throw new StrategyError(
        `expert ${i} factors have A=${e.A.length}, B=${e.B.length} values; rank ${e.rank} needs ` +
          `A=${e.rank * n}, B=${m * e.rank}`,
        module,
      );
    }
    // NaN/Inf would poison every SVD-based strategy into a silent all-zero result (a NaN
    // singular value stops every rank loop at 0), so reject it here for all strategies.
    for (const [name, values] of [
      ["A", e.A],
      ["B", e.B],
    ] as const) {
      const bad = firstNonFinite(values);
      if (bad !== -1) {
        throw new StrategyError(
          `expert ${i} has non-finite factor values in ${name} (${name}[${bad}] = ${values[bad]})`,
          module,
        );
      }
    }
    if (!Number.isFinite(e.scale)) {
      throw new StrategyError(`expert ${i} has non-finite scale ${e.scale}`, module);
    }
  });
  if (!Number.isInteger(ctx.seed))
    throw new StrategyError(`seed must be an integer, got ${ctx.seed}`, module);
  const w = ctx.expertWeights;
  if (w !== undefined) {
    if (w.length !== experts.length) {
      throw new StrategyError(`${w.length} expert weights for ${experts.length} experts`, module);
    }
    w.forEach((x, i) => {
      if (!Number.isFinite(x))
        throw new StrategyError(`expert weight ${i} is ${x}, expected a finite number`, module);
    });
  }
}

/** Index of the first NaN/±Inf value, or -1. */
function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/** ctx.expertWeights, or 1 for every expert. */
export function expertWeights(input: ModuleMergeInput, ctx: MergeContext): number[] {
  return ctx.expertWeights?.slice() ?? input.experts.map(() => 1);
}

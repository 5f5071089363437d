import {
  type MergeContext,
  type ModuleMergeInput,
  type MergeResult,
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

/** A registry entry whose merge validates its hyperparameters and input before running. */
export function defineStrategy<H extends Record<string, unknown>>(spec: {
  name: string;
  description: string;
  reference?: string;
  defaults: H;
  choices?: Choices<H>;
  validate?: (hyper: H) => void;
  run: (input: ModuleMergeInput, hyper: H, ctx: MergeContext) => MergeResult;
}): StrategyDefinition<H> {
  const { name, description, reference, defaults, choices, validate, run } = spec;
  return {
    name,
    description,
    ...(reference === undefined ? {} : { reference }),
    defaults: Object.freeze({ ...defaults }) as H,
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

/** ctx.expertWeights, or 1 for every expert. */
export function expertWeights(input: ModuleMergeInput, ctx: MergeContext): number[] {
  return ctx.expertWeights?.slice() ?? input.experts.map(() => 1);
}

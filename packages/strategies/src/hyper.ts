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
 * A number hyperparameter: always finite; optionally an integer and within [min, max] (either end
 * open with minExclusive / maxExclusive).
 */
export interface NumberParam {
  type: "number";
  default: number;
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  integer?: boolean;
  description?: string;
}

/** A string hyperparameter, optionally restricted to `choices`. */
export interface StringParam {
  type: "string";
  default: string;
  choices?: readonly string[];
  description?: string;
}

export interface BooleanParam {
  type: "boolean";
  default: boolean;
  description?: string;
}

/** One declared hyperparameter: type, default and its allowed range or choices. */
export type ParamSpec = NumberParam | StringParam | BooleanParam;

/** A strategy's hyperparameters, declared once: defaults, choices and range checks derive from it. */
export type ParamSpecs = Readonly<Record<string, ParamSpec>>;

/** The hyperparameter object a set of declarations describes. */
export type HyperOf<P extends ParamSpecs> = {
  -readonly [K in keyof P]: P[K] extends NumberParam
    ? number
    : P[K] extends BooleanParam
      ? boolean
      : string;
};

/** The defaults of a set of declarations. */
export function paramDefaults<P extends ParamSpecs>(params: P): HyperOf<P> {
  return Object.fromEntries(Object.entries(params).map(([k, p]) => [k, p.default])) as HyperOf<P>;
}

/** The allowed values of a number hyperparameter in words: "in (0, 1]", "a positive integer", … */
export function describeRange(p: NumberParam): string {
  const { min, max, integer } = p;
  if (integer && max === undefined && !p.minExclusive) {
    if (min === 1) return "a positive integer";
    if (min === 0) return "a non-negative integer";
  }
  const what = integer ? "an integer" : "";
  let range: string;
  if (min !== undefined && max !== undefined) {
    range = `in ${p.minExclusive ? "(" : "["}${min}, ${max}${p.maxExclusive ? ")" : "]"}`;
  } else if (min !== undefined) {
    range = `${p.minExclusive ? ">" : "≥"} ${min}`;
  } else if (max !== undefined) {
    range = `${p.maxExclusive ? "<" : "≤"} ${max}`;
  } else {
    return integer ? "an integer" : "a finite number";
  }
  return what === "" ? range : `${what} ${range}`;
}

/** One line per parameter for docs and --list-methods: `density` number in (0, 1], default 0.2. */
export function describeParam(name: string, p: ParamSpec): string {
  const allowed =
    p.type === "number"
      ? describeRange(p)
      : p.type === "string" && p.choices !== undefined
        ? `one of ${p.choices.map((c) => JSON.stringify(c)).join(", ")}`
        : p.type;
  return `${name}: ${allowed}, default ${JSON.stringify(p.default)}`;
}

function inRange(p: NumberParam, v: number): boolean {
  if (p.integer && !Number.isInteger(v)) return false;
  if (p.min !== undefined && (p.minExclusive ? !(v > p.min) : !(v >= p.min))) return false;
  if (p.max !== undefined && (p.maxExclusive ? !(v < p.max) : !(v <= p.max))) return false;
  return true;
}

/**
 * Fills missing hyperparameters from the declarations' defaults and rejects unknown names, wrong
 * types, values outside `choices` and out-of-range numbers, so a typo or a bad value in a config
 * file fails loudly (before any merge) instead of merging with a silent default.
 */
export function resolveParams<P extends ParamSpecs>(
  strategy: string,
  params: P,
  given: Partial<Record<string, unknown>> | undefined,
): HyperOf<P> {
  const out: Record<string, unknown> = paramDefaults(params);
  for (const [key, value] of Object.entries(given ?? {})) {
    const p = Object.hasOwn(params, key) ? params[key] : undefined;
    if (p === undefined) {
      throw new StrategyError(
        `strategy "${strategy}" has no hyperparameter "${key}" (known: ${Object.keys(params).join(", ") || "none"})`,
      );
    }
    if (value === undefined) continue;
    if (typeof value !== p.type || (p.type === "number" && !Number.isFinite(value as number))) {
      throw new StrategyError(
        `strategy "${strategy}": hyperparameter "${key}" must be a ${p.type === "number" ? "finite number" : p.type}, got ${JSON.stringify(value)}`,
      );
    }
    if (p.type === "string" && p.choices !== undefined && !p.choices.includes(value as string)) {
      throw new StrategyError(
        `strategy "${strategy}": hyperparameter "${key}" must be one of ${p.choices.join(", ")}, got "${String(value)}"`,
      );
    }
    if (p.type === "number" && !inRange(p, value as number)) {
      throw new StrategyError(
        `strategy "${strategy}": hyperparameter "${key}" must be ${describeRange(p)}, got ${value}`,
      );
    }
    out[key] = value;
  }
  return out as HyperOf<P>;
}

/**
 * resolveParams for callers that only have defaults (and choices): the type of each parameter
 * is its default's. Prefer a strategy's `checkHyper`, which also checks ranges.
 */
export function resolveHyper<H extends Record<string, unknown>>(
  strategy: string,
  defaults: H,
  given: Partial<Record<string, unknown>> | undefined,
  choices: Choices<H> = {},
): H {
  const params: Record<string, ParamSpec> = {};
  for (const [key, d] of Object.entries(defaults)) {
    const allowed = choices[key as keyof H];
    params[key] =
      typeof d === "number"
        ? { type: "number", default: d }
        : typeof d === "boolean"
          ? { type: "boolean", default: d }
          : { type: "string", default: String(d), ...(allowed ? { choices: allowed } : {}) };
  }
  return { ...defaults, ...resolveParams(strategy, params, given) } as H;
}

/** Throws unless lo ≤ value ≤ hi (or lo ≤ value < hi when `openHigh`). For cross-field rules. */
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

/** The declarations shared by several strategies. */
export const PARAMS = {
  /** 0 < density ≤ 1: density 0 would keep no entries and silently merge to zero. */
  density: {
    type: "number",
    default: 0.2,
    min: 0,
    max: 1,
    minExclusive: true,
    description: "fraction of entries kept",
  },
  lambda: { type: "number", default: 1, description: "scale of the merged update" },
  /** Drop probability of DARE: 1 would drop everything and divide by zero. */
  p: { type: "number", default: 0.9, min: 0, max: 1, maxExclusive: true, description: "drop rate" },
  rank: {
    type: "number",
    default: 0,
    min: 0,
    integer: true,
    description: "target rank (0 = the strategy's default rank)",
  },
  energy: {
    type: "number",
    default: 1,
    min: 0,
    max: 1,
    description: "keep the smallest rank holding this fraction of the energy",
  },
  alpha: { type: "number", default: 1, min: 0, description: "scale of the flat spectrum" },
  normalize: { type: "boolean", default: true, description: "divide by the sum of the weights" },
} as const satisfies ParamSpecs;

/** A registry entry whose merge validates its hyperparameters and input before running. */
export function defineStrategy<const P extends ParamSpecs>(spec: {
  name: string;
  description: string;
  reference?: string;
  /** Every hyperparameter with its type, default and range or choices. */
  params: P;
  resultKind: ResultKind;
  /** Cross-field rules only: types, choices and ranges come from `params`. */
  validate?: (hyper: HyperOf<P>) => void;
  run: (input: ModuleMergeInput, hyper: HyperOf<P>, ctx: MergeContext) => MergeResult;
}): StrategyDefinition<HyperOf<P>> {
  const { name, description, reference, resultKind, validate, run } = spec;
  const params = Object.freeze(
    Object.fromEntries(Object.entries(spec.params).map(([k, p]) => [k, Object.freeze({ ...p })])),
  ) as P;
  const checkHyper = (hyper: Partial<Record<string, unknown>> | undefined): HyperOf<P> => {
    const resolved = resolveParams(name, params, hyper);
    validate?.(resolved);
    return resolved;
  };
  return {
    name,
    description,
    ...(reference === undefined ? {} : { reference }),
    params,
    defaults: Object.freeze(paramDefaults(params)),
    resultKind,
    checkHyper,
    merge(input, hyper, ctx) {
      const resolved = checkHyper(hyper);
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

import { knots } from "./methods/knots.js";
import { cat, linear, svd, taskArithmetic } from "./methods/linear.js";
import { osm } from "./methods/osm.js";
import { arrow, liftRouting, smile } from "./methods/routed.js";
import { energyIso, isoC, isoCts, tsvM } from "./methods/spectral.js";
import { dare, dareLinear, dareTies, magnitudePrune, ties } from "./methods/sparse.js";
import { withSvdTruncation } from "./methods/svd-variants.js";
import { type StrategyDefinition, StrategyError } from "./types.js";

/** The toolkit's default strategy: Chance-Lift Routing, the best measured on the zoo (docs/merge-quality.md). */
export const DEFAULT_STRATEGY = "lift_routing";

type AnyStrategy = StrategyDefinition<Record<string, unknown>>;

const STRATEGIES: readonly AnyStrategy[] = [
  liftRouting,
  osm,
  linear,
  taskArithmetic,
  ties,
  dare,
  dareLinear,
  dareTies,
  magnitudePrune,
  cat,
  svd,
  knots,
  energyIso,
  isoC,
  isoCts,
  tsvM,
  smile,
  arrow,
  withSvdTruncation(ties),
  withSvdTruncation(dareLinear),
  withSvdTruncation(dareTies),
  withSvdTruncation(magnitudePrune),
].map((s) => s as unknown as AnyStrategy);

const BY_NAME = new Map(STRATEGIES.map((s) => [s.name, s]));

/** The strategy registered under `name`; throws a StrategyError listing the known names. */
export function getStrategy(name: string): StrategyDefinition<Record<string, unknown>> {
  const s = BY_NAME.get(name);
  if (s === undefined) {
    throw new StrategyError(
      `unknown strategy "${name}" (known: ${[...BY_NAME.keys()].join(", ")})`,
    );
  }
  return s;
}

/** All registered strategies, the default first. */
export function listStrategies(): StrategyDefinition<Record<string, unknown>>[] {
  return [...STRATEGIES];
}

/**
 * The defaults of strategy `name` overridden by `hyper`, fully validated without merging: throws
 * a StrategyError for an unknown strategy or a hyperparameter that is unknown, of the wrong type,
 * not among its choices or out of range.
 */
export function validateHyper(
  name: string,
  hyper: Partial<Record<string, unknown>> | undefined,
): Record<string, unknown> {
  return getStrategy(name).checkHyper(hyper);
}

/** Every strategy's declared hyperparameters, by name (for docs and --list-methods). */
export function strategyParams(): Record<
  string,
  StrategyDefinition<Record<string, unknown>>["params"]
> {
  return Object.fromEntries(STRATEGIES.map((s) => [s.name, s.params]));
}

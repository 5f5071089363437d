import { type StrategyDefinition, getStrategy, resolveHyper } from "@merge/strategies";

export interface ResolvedStrategy {
  strategy: StrategyDefinition<Record<string, unknown>>;
  /** The strategy's defaults overridden by the config's hyperparameters. */
  hyper: Record<string, unknown>;
}

/**
 * Looks the method up in the registry and checks the config's hyperparameters against its
 * typed defaults before any work, so a typo fails at once (StrategyError lists what is known).
 * Range checks specific to a method run when it merges its first module.
 */
export function resolveStrategy(
  method: string,
  overrides: Record<string, unknown>,
): ResolvedStrategy {
  const strategy = getStrategy(method);
  return { strategy, hyper: resolveHyper(strategy.name, strategy.defaults, overrides) };
}

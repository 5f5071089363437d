import type { StrategyDefinition } from "@merge/strategies";

/** A method and its validated hyperparameters (from planRun, via strategy.checkHyper). */
export interface ResolvedStrategy {
  strategy: StrategyDefinition<Record<string, unknown>>;
  /** The strategy's defaults overridden by the config's hyperparameters, fully validated. */
  hyper: Record<string, unknown>;
}

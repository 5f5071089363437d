import type { LoraModule } from "@merge/lora";

export interface ModuleMergeInput {
  module: string;
  outFeatures: number;
  inFeatures: number;
  experts: Array<LoraModule | null>; // one slot per expert, null = expert lacks module
}

export type MergeResult =
  | {
      kind: "lowrank";
      A: Float32Array;
      B: Float32Array;
      rank: number;
      outFeatures: number;
      inFeatures: number;
    } // ΔW = B·A (scale folded in)
  | { kind: "dense"; delta: Float32Array; outFeatures: number; inFeatures: number };

export interface MergeContext {
  seed: number;
  expertWeights?: number[];
}

export interface StrategyDefinition<H extends Record<string, unknown>> {
  name: string;
  description: string;
  reference?: string;
  defaults: H;
  merge(input: ModuleMergeInput, hyper: H, ctx: MergeContext): MergeResult;
}

/** Bad strategy name, hyperparameter or merge input; names the module when there is one. */
export class StrategyError extends Error {
  readonly module: string | undefined;
  constructor(message: string, module?: string) {
    super(module === undefined ? message : `${module}: ${message}`);
    this.name = "StrategyError";
    this.module = module;
  }
}

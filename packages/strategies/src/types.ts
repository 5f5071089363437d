import type { ParamSpec } from "./hyper.js";
import type { LoraModule, Where } from "@merge/lora";

/** The error-location shape, shared with @merge/lora (this package's one dependency). */
export type { Where };

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
  | { kind: "dense"; delta: Float32Array; outFeatures: number; inFeatures: number }
  | RoutedMergeResult;

/** What a strategy returns, declared with it so callers know before merging. */
export type ResultKind = "lowrank" | "dense" | "routed";

/**
 * One expert inside a routed result: ΔW_i = B·A with A's rows an orthonormal basis of the
 * expert's input subspace (its right singular vectors) and B = U·diag(S) (scale folded in).
 */
export interface RoutedExpert {
  A: Float32Array; // rank × in
  B: Float32Array; // out × rank
  rank: number;
}

/**
 * How a routed result weighs its experts for one input row x (see routedForward):
 * - score "norm": ‖A_i x‖ (SMILE); "first": |a_i1 · x|, the top direction only (Arrow);
 *   "lift": (‖A_i x‖² / ‖x‖²) / (r_i / in), the share of x's energy in the expert's subspace
 *   over what a random direction would put there (ours).
 * - gate "softmax_top_k": softmax over the topK best scores / temperature, the rest 0;
 *   "margin": the best expert alone, weighted 1 − second/best (a tie gives the base).
 */
export interface Router {
  score: "norm" | "first" | "lift";
  gate: "softmax_top_k" | "margin";
  topK: number;
  temperature: number;
}

/** The base plus every expert's factors and a router computed from the weights alone. */
export interface RoutedMergeResult {
  kind: "routed";
  experts: Array<RoutedExpert | null>; // one slot per expert, null = expert lacks the module
  router: Router;
  outFeatures: number;
  inFeatures: number;
}

export interface MergeContext {
  seed: number;
  expertWeights?: number[];
}

export interface StrategyDefinition<H extends Record<string, unknown>> {
  name: string;
  description: string;
  reference?: string;
  /** Each hyperparameter's type, default and range or choices (what `checkHyper` enforces). */
  params: Readonly<Record<string, ParamSpec>>;
  /** The declared defaults, derived from `params`. */
  defaults: H;
  /** The kind of MergeResult merge() returns. */
  resultKind: ResultKind;
  /**
   * The defaults overridden by `hyper`, fully validated (unknown names, types, choices, ranges,
   * cross-field rules) without merging anything; throws a StrategyError naming the parameter.
   */
  checkHyper(hyper: Partial<Record<string, unknown>> | undefined): H;
  merge(input: ModuleMergeInput, hyper: H, ctx: MergeContext): MergeResult;
}

/** Bad strategy name, hyperparameter or merge input; names the module when there is one. */
export class StrategyError extends Error {
  readonly module: string | undefined;
  readonly where: Where;
  constructor(message: string, module?: string) {
    super(module === undefined ? message : `${module}: ${message}`);
    this.name = "StrategyError";
    this.module = module;
    this.where = module === undefined ? {} : { module };
  }
}

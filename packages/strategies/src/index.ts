export type {
  MergeContext,
  MergeResult,
  ModuleMergeInput,
  ResultKind,
  RoutedExpert,
  RoutedMergeResult,
  Router,
  StrategyDefinition,
} from "./types.js";
export { StrategyError, type Where } from "./types.js";
export {
  DEFAULT_STRATEGY,
  getStrategy,
  listStrategies,
  strategyParams,
  validateHyper,
} from "./registry.js";
export {
  type BooleanParam,
  type Choices,
  defineStrategy,
  describeParam,
  describeRange,
  type HyperOf,
  type NumberParam,
  PARAMS,
  type ParamSpec,
  type ParamSpecs,
  paramDefaults,
  resolveHyper,
  resolveParams,
  type StringParam,
} from "./hyper.js";
export { type DropMaskSource, fixedDropMasks, seededDropMasks } from "./drop-mask.js";
export { type ElementwiseSpec, mergeElementwise } from "./elementwise.js";
export { type LowRankMergeResult, type ToLowRankOptions, toLowRank } from "./to-low-rank.js";
export {
  type DareHyper,
  type DareLinearHyper,
  type DareTiesHyper,
  mergeDare,
  mergeDareLinear,
  mergeDareTies,
  type TiesHyper,
} from "./methods/sparse.js";
export { type KnotsHyper, knotsBasis, mergeKnots } from "./methods/knots.js";
export {
  mergeOsm,
  type OsmAnalysis,
  type OsmHyper,
  type OsmSharing,
  osmAnalyse,
} from "./methods/osm.js";
export { withSvdTruncation } from "./methods/svd-variants.js";
export { arrow, liftRouting, routedExperts, routedForward, smile } from "./methods/routed.js";
export { energyIso, isoC, isoCts, tsvM } from "./methods/spectral.js";

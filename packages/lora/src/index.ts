export { LoraError, type Where } from "./errors.js";
export { type LoraModule, loraModuleFromPeft, loraScale, validateLoraModule } from "./module.js";
export { DeltaRowReader, denseDelta, type FactorPair, rowBlockSize } from "./dense.js";
export {
  chooseRank,
  concatenate,
  type LowRank,
  type LowRankSvd,
  lowRankSvd,
  svdToLowRank,
  truncateSvd,
  truncationError,
} from "./factor.js";
export {
  type Floats,
  matmul,
  matmulTransA,
  matmulTransB,
  type SmallSvd,
  smallSvd,
  type SymmetricEigen,
  symmetricEigen,
  type ThinQr,
  thinQr,
  transpose,
} from "./linalg.js";
export { groupByModule, type ModuleGroup } from "./group.js";
export {
  type PrincipalAngles,
  principalAngles,
  type SubspaceOverlap,
  subspaceOverlap,
} from "./subspace.js";
export { deriveSeed, Rng } from "./random.js";
export {
  type RandomizedSvdOptions,
  randomizedSvd,
  relativeErrorToDense,
} from "./randomized-svd.js";

// Run: node --conditions=source --import tsx packages/lora/examples/basic.ts
import {
  chooseRank,
  concatenate,
  denseDelta,
  type LoraModule,
  loraScale,
  lowRankSvd,
  Rng,
  subspaceOverlap,
  svdToLowRank,
  truncateSvd,
  truncationError,
} from "@merge/lora";

const rng = new Rng(0);
const randn = (n: number) => Float32Array.from({ length: n }, () => rng.nextGaussian() * 0.1);

// Two experts on one 32 × 64 module, of ranks 4 and 8 (alpha 16, the second with rsLoRA).
const expert = (rank: number, useRslora: boolean): LoraModule => ({
  A: randn(rank * 64),
  B: randn(32 * rank),
  rank,
  inFeatures: 64,
  outFeatures: 32,
  scale: loraScale(16, rank, useRslora),
});
const a = expert(4, false);
const b = expert(8, true);

// Their sum is a LoRA of rank 12; its exact SVD never forms the 32 × 64 matrix.
const sum = concatenate([a, b], { outFeatures: 32, inFeatures: 64 });
const svd = lowRankSvd(sum);
const k = chooseRank(svd.S, { energy: 0.9 });
const merged = svdToLowRank(truncateSvd(svd, k));
console.log(`sum has rank ${sum.rank}; ${k} components keep 90% of its energy`);
console.log(`relative error of the rank-${k} truncation: ${truncationError(svd.S, k).toFixed(3)}`);
console.log(
  `output-subspace overlap of the two experts: ${subspaceOverlap(a, b).overlap.toFixed(3)}`,
);

// Dense rows, when elementwise work needs them: row 0 of expert a's ΔW.
console.log(
  `ΔW_a[0, 0:3] = ${Array.from(denseDelta(a, 0, 1).subarray(0, 3), (x) => x.toFixed(4)).join(", ")}`,
);
console.log(
  `merged factors: B ${merged.outFeatures}×${merged.rank}, A ${merged.rank}×${merged.inFeatures}`,
);

import { DeltaRowReader } from "@merge/lora";
import type { DropMaskSource } from "./drop-mask.js";
import { blockRows, TopKMask, topKSelection } from "./select.js";
import type { MergeResult, ModuleMergeInput } from "./types.js";

/** An elementwise merge over dense deltas: per-expert sparsification, then a combination. */
export interface ElementwiseSpec {
  /** Per-expert weights w_i (applied before the sign election and the combination). */
  weights: readonly number[];
  /** Keep the top ⌊density·numel⌋ entries of each expert's ΔW by magnitude (TIES trim). */
  trimDensity?: number;
  /** DARE: drop entries where the mask says 0 and divide the kept ones by 1 − p. */
  drop?: { p: number; masks: DropMaskSource };
  /** "sum": Σ w_i x_i. "disjoint_mean": TIES sign election by mass and mean over agreeing experts. */
  combine: "sum" | "disjoint_mean";
  /** TIES sign election on Σ w_i x_i ("total", the paper's mass) or Σ sign(w_i x_i) ("frequency"). */
  majoritySign?: "total" | "frequency";
  /** Multiplies the combined value: λ, or 1/Σw for a normalised average. */
  outputScale: number;
}

/**
 * Runs an elementwise merge in row blocks: each block of every expert's ΔW is recomputed from
 * its factors, so the peak is the output plus one block per expert (and, with trimming, one
 * expert's |ΔW| while its threshold is selected).
 */
export function mergeElementwise(input: ModuleMergeInput, spec: ElementwiseSpec): MergeResult {
  const { outFeatures: m, inFeatures: n, experts } = input;
  const delta = new Float32Array(m * n);
  const present = experts
    .map((e, i) => ({ e, i }))
    .filter((x): x is { e: NonNullable<typeof x.e>; i: number } => x.e !== null && x.e.rank > 0);
  if (present.length === 0 || m === 0 || n === 0)
    return { kind: "dense", delta, outFeatures: m, inFeatures: n };
  const trims = present.map(({ e }) =>
    spec.trimDensity === undefined ? null : new TopKMask(topKSelection(e, spec.trimDensity)),
  );
  const readers = present.map(({ e }) => new DeltaRowReader(e));
  const w = present.map(({ i }) => spec.weights[i]!);
  const rowsPerBlock = blockRows(n);
  const cap = rowsPerBlock * n;
  const blocks = present.map(() => new Float32Array(cap));
  const keep = new Uint8Array(spec.drop === undefined ? 0 : cap);
  const keepDensity = spec.drop === undefined ? 1 : 1 - spec.drop.p;
  const scale = spec.outputScale;
  const frequency = spec.majoritySign === "frequency";
  const count = present.length;
  for (let r0 = 0; r0 < m; r0 += rowsPerBlock) {
    const r1 = Math.min(m, r0 + rowsPerBlock);
    const len = (r1 - r0) * n;
    for (let x = 0; x < count; x++) {
      const block = blocks[x]!;
      readers[x]!.read(r0, r1, block);
      trims[x]?.apply(block, len);
      if (spec.drop !== undefined) {
        spec.drop.masks.fill(present[x]!.i, r0 * n, keep, len);
        // PEFT divides by the keep density rather than multiplying by its reciprocal; so do we.
        for (let j = 0; j < len; j++) block[j] = keep[j] === 1 ? block[j]! / keepDensity : 0;
      }
    }
    const out = r0 * n;
    if (spec.combine === "sum") {
      for (let j = 0; j < len; j++) {
        let s = 0;
        for (let x = 0; x < count; x++) s += w[x]! * blocks[x]![j]!;
        delta[out + j] = scale * s;
      }
    } else {
      for (let j = 0; j < len; j++) {
        let total = 0;
        for (let x = 0; x < count; x++) {
          const v = w[x]! * blocks[x]![j]!;
          total += frequency ? Math.sign(v) : v;
        }
        const elected = total >= 0 ? 1 : -1;
        let acc = 0;
        let agree = 0;
        for (let x = 0; x < count; x++) {
          const v = w[x]! * blocks[x]![j]!;
          if (v !== 0 && Math.sign(v) === elected) {
            acc += v;
            agree++;
          }
        }
        delta[out + j] = agree === 0 ? 0 : (scale * acc) / agree;
      }
    }
  }
  return { kind: "dense", delta, outFeatures: m, inFeatures: n };
}

import { DeltaRowReader } from "@merge/lora";
import type { DropMaskSource } from "./drop-mask.js";
import { blockRows, topKBits, unpackBits } from "./select.js";
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
 * expert's ΔW and |ΔW| while its top-k bitset is selected, plus numel/8 bytes per expert).
 * Where trimming or DARE drop entries, only the kept entries are computed.
 */
export function mergeElementwise(input: ModuleMergeInput, spec: ElementwiseSpec): MergeResult {
  const { outFeatures: m, inFeatures: n, experts } = input;
  const present = experts
    .map((e, i) => ({ e, i }))
    .filter((x): x is { e: NonNullable<typeof x.e>; i: number } => x.e !== null && x.e.rank > 0);
  if (present.length === 0 || m === 0 || n === 0) {
    return { kind: "dense", delta: new Float32Array(m * n), outFeatures: m, inFeatures: n };
  }
  // Pass 1 (trimming only): each expert's kept entries as a bitset, one expert at a time.
  const trims = present.map(({ e }) =>
    spec.trimDensity === undefined ? null : topKBits(e, spec.trimDensity),
  );
  // Allocated after pass 1 so the output and an expert's full ΔW never coexist.
  const delta = new Float32Array(m * n);
  const readers = present.map(({ e }) => new DeltaRowReader(e));
  const w = present.map(({ i }) => spec.weights[i]!);
  const rowsPerBlock = blockRows(n);
  const cap = rowsPerBlock * n;
  const blocks = present.map(() => new Float32Array(cap));
  const keep = new Uint8Array(spec.drop === undefined && spec.trimDensity === undefined ? 0 : cap);
  const dropKeep = new Uint8Array(
    spec.drop !== undefined && spec.trimDensity !== undefined ? cap : 0,
  );
  const keepDensity = spec.drop === undefined ? 1 : 1 - spec.drop.p;
  const scale = spec.outputScale;
  const frequency = spec.majoritySign === "frequency";
  const count = present.length;
  const total = new Float64Array(cap);
  const acc = new Float64Array(spec.combine === "sum" ? 0 : cap);
  const agree = new Float64Array(spec.combine === "sum" ? 0 : cap);
  const elected = new Float64Array(spec.combine === "sum" ? 0 : cap);
  for (let r0 = 0; r0 < m; r0 += rowsPerBlock) {
    const r1 = Math.min(m, r0 + rowsPerBlock);
    const len = (r1 - r0) * n;
    for (let x = 0; x < count; x++) {
      const block = blocks[x]!;
      const trim = trims[x] ?? null;
      if (trim === null && spec.drop === undefined) {
        readers[x]!.read(r0, r1, block);
        continue;
      }
      // Masked: compute only the entries trimming and/or DARE keep (most of them are dropped).
      if (trim !== null) unpackBits(trim, r0 * n, len, keep);
      if (spec.drop !== undefined) {
        if (trim === null) spec.drop.masks.fill(present[x]!.i, r0 * n, keep, len);
        else {
          spec.drop.masks.fill(present[x]!.i, r0 * n, dropKeep, len);
          for (let j = 0; j < len; j++) keep[j]! &= dropKeep[j]!;
        }
      }
      readers[x]!.readMasked(r0, r1, keep, block);
      if (spec.drop !== undefined) {
        // PEFT divides by the keep density rather than multiplying by its reciprocal; so do we.
        for (let j = 0; j < len; j++) if (keep[j] === 1) block[j] = block[j]! / keepDensity;
      }
    }
    const out = r0 * n;
    // Expert-outer loops over flat blocks keep every inner loop simple and monomorphic.
    total.fill(0, 0, len);
    for (let x = 0; x < count; x++) {
      const block = blocks[x]!;
      const wx = w[x]!;
      if (frequency) for (let j = 0; j < len; j++) total[j]! += Math.sign(wx * block[j]!);
      else for (let j = 0; j < len; j++) total[j]! += wx * block[j]!;
    }
    if (spec.combine === "sum") {
      for (let j = 0; j < len; j++) delta[out + j] = scale * total[j]!;
      continue;
    }
    // Elected sign: + when the total is ≥ 0 (PEFT: torch.where(sum >= 0, 1, -1)).
    for (let j = 0; j < len; j++) elected[j] = total[j]! >= 0 ? 1 : -1;
    acc.fill(0, 0, len);
    agree.fill(0, 0, len);
    for (let x = 0; x < count; x++) {
      const block = blocks[x]!;
      const wx = w[x]!;
      for (let j = 0; j < len; j++) {
        const v = wx * block[j]!;
        // Branch-free (signs are unpredictable): v agrees iff it is non-zero with the elected sign.
        const agrees = +(v * elected[j]! > 0);
        acc[j]! += v * agrees;
        agree[j]! += agrees;
      }
    }
    for (let j = 0; j < len; j++) {
      const c = agree[j]!;
      delta[out + j] = c === 0 ? 0 : (scale * acc[j]!) / c;
    }
  }
  return { kind: "dense", delta, outFeatures: m, inFeatures: n };
}

import { DeltaRowReader, type LoraModule, rowBlockSize } from "@merge/lora";

/**
 * Which entries of one expert's ΔW survive magnitude trimming to `density`: exactly
 * k = ⌊density · numel⌋ entries (as PEFT's `torch.topk`), those with |x| > threshold plus the
 * first `tieQuota` entries with |x| = threshold in row-major order.
 */
export interface TopKSelection {
  threshold: number;
  tieQuota: number;
  keepAll: boolean;
}

export function topKSelection(expert: LoraModule, density: number): TopKSelection {
  if (density >= 1) return { threshold: 0, tieQuota: 0, keepAll: true };
  const m = expert.outFeatures;
  const n = expert.inFeatures;
  const total = m * n;
  const k = Math.floor(density * total);
  if (k <= 0) return { threshold: Number.POSITIVE_INFINITY, tieQuota: 0, keepAll: false };
  // One expert's |ΔW| at a time: the peak is one out×in Float32 matrix, not one per expert.
  const abs = new DeltaRowReader(expert).read(0, m);
  for (let i = 0; i < total; i++) abs[i] = Math.abs(abs[i]!);
  const threshold = kthLargest(abs, k);
  let greater = 0;
  for (let i = 0; i < total; i++) if (abs[i]! > threshold) greater++;
  return { threshold, tieQuota: k - greater, keepAll: false };
}

/** k-th largest value (1-based) of `a`, reordering `a` in place: quickselect with 3-way partition. */
export function kthLargest(a: Float32Array | Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  let target = k - 1; // index in descending order
  while (lo < hi) {
    const mid = lo + ((hi - lo) >> 1);
    const pivot = median3(a[lo]!, a[mid]!, a[hi]!);
    // Dutch flag, descending: [lo, lt) > pivot, [lt, gt] == pivot, (gt, hi] < pivot.
    let lt = lo;
    let gt = hi;
    let i = lo;
    while (i <= gt) {
      const v = a[i]!;
      if (v > pivot) {
        a[i] = a[lt]!;
        a[lt] = v;
        lt++;
        i++;
      } else if (v < pivot) {
        a[i] = a[gt]!;
        a[gt] = v;
        gt--;
      } else i++;
    }
    if (target < lt - lo) hi = lt - 1;
    else if (target <= gt - lo) return pivot;
    else {
      target -= gt + 1 - lo;
      lo = gt + 1;
    }
  }
  return a[lo]!;
}

function median3(x: number, y: number, z: number): number {
  return Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
}

/** Applies a TopKSelection to consecutive blocks of one expert (blocks must come in order). */
export class TopKMask {
  private quota: number;
  constructor(private readonly sel: TopKSelection) {
    this.quota = sel.tieQuota;
  }
  apply(values: Float32Array, count: number): void {
    if (this.sel.keepAll) return;
    const t = this.sel.threshold;
    for (let i = 0; i < count; i++) {
      const a = Math.abs(values[i]!);
      if (a > t) continue;
      if (a === t && this.quota > 0) {
        this.quota--;
        continue;
      }
      values[i] = 0;
    }
  }
}

/** Default rows per block for elementwise work: ≈1 M values per expert block. */
export function blockRows(inFeatures: number): number {
  return rowBlockSize(inFeatures, 1 << 20);
}

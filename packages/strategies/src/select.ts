import { DeltaRowReader, type LoraModule, rowBlockSize } from "@merge/lora";

/**
 * Which entries of one expert's ΔW survive magnitude trimming to `density`, as a bitset over
 * its row-major entries (bit i of word i >> 5), or null when everything is kept. Exactly
 * k = ⌊density · numel⌋ entries are kept, as with PEFT's `torch.topk`: those with |x| above the
 * k-th largest magnitude t, then the first entries with |x| = t in row-major order. The bitset
 * (numel/8 bytes) lets the merge pass compute only the kept entries.
 */
export function topKBits(expert: LoraModule, density: number): Uint32Array | null {
  if (density >= 1) return null;
  const m = expert.outFeatures;
  const n = expert.inFeatures;
  const total = m * n;
  const bits = new Uint32Array(Math.ceil(total / 32));
  const k = Math.floor(density * total);
  if (k <= 0) return bits;
  // One expert's ΔW at a time; the selection works on the bit patterns of |x| (for
  // non-negative floats, unsigned order = numeric order), so no sorted or abs copy is needed.
  const values = new DeltaRowReader(expert).read(0, m);
  const keys = new Uint32Array(values.buffer, values.byteOffset, total);
  const { key: threshold, ties: tieCount } = radixSelectAbs(keys, k);
  let ties = tieCount;
  for (let i = 0; i < total; i++) {
    const key = keys[i]! & 0x7fffffff;
    let bit = +(key > threshold);
    if (key === threshold && ties > 0) {
      bit = 1;
      ties--;
    }
    bits[i >>> 5]! |= bit << (i & 31);
  }
  return bits;
}

/**
 * The k-th largest |x| of Float32 values given as their raw bits, by three histogram passes over
 * 11 + 10 + 10 bits of |x|'s pattern (MSB radix select): O(3·n) with no data-dependent swaps.
 * Returns its bit pattern and how many entries equal to it belong to the top k.
 */
export function radixSelectAbs(keys: Uint32Array, k: number): { key: number; ties: number } {
  let prefix = 0;
  let prefixMask = 0;
  let remaining = k;
  for (const [shift, width] of [
    [20, 11],
    [10, 10],
    [0, 10],
  ] as const) {
    const size = 1 << width;
    const hist = new Float64Array(size);
    const digit = size - 1;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]! & 0x7fffffff;
      if ((key & prefixMask) === prefix) hist[(key >>> shift) & digit]!++;
    }
    let bucket = digit;
    while (bucket > 0 && hist[bucket]! < remaining) remaining -= hist[bucket--]!;
    prefix |= bucket << shift;
    prefixMask |= digit << shift;
  }
  return { key: prefix >>> 0, ties: remaining };
}

/** Writes bits [offset, offset + count) of a bitset as 0/1 bytes into `out`. */
export function unpackBits(
  bits: Uint32Array,
  offset: number,
  count: number,
  out: Uint8Array,
): void {
  for (let i = 0; i < count; i++) {
    const b = offset + i;
    out[i] = (bits[b >>> 5]! >>> (b & 31)) & 1;
  }
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

/** Default rows per block for elementwise work: ≈1 M values per expert block. */
export function blockRows(inFeatures: number): number {
  return rowBlockSize(inFeatures, 1 << 20);
}

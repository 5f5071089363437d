import { LoraError } from "./errors.js";
import type { Floats } from "./linalg.js";

/** Factors of ΔW = scale · B · A (scale 1 when absent); A: rank × in, B: out × rank. */
export interface FactorPair {
  A: Floats;
  B: Floats;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  scale?: number;
}

/**
 * Materialises rows of ΔW = scale·B·A block by block, so elementwise strategies never hold a
 * whole out × in matrix per expert. Aᵀ is kept once in Float64 (in × rank) so each output entry
 * is one contiguous dot product of length rank, accumulated in Float64.
 */
export class DeltaRowReader {
  readonly outFeatures: number;
  readonly inFeatures: number;
  private readonly rank: number;
  private readonly b: Floats;
  private readonly at: Float64Array;
  private readonly brow: Float64Array;

  constructor(m: FactorPair) {
    if (m.A.length !== m.rank * m.inFeatures || m.B.length !== m.outFeatures * m.rank) {
      throw new LoraError(
        `factor sizes A=${m.A.length}, B=${m.B.length} do not match rank ${m.rank}, ` +
          `in ${m.inFeatures}, out ${m.outFeatures}`,
      );
    }
    this.outFeatures = m.outFeatures;
    this.inFeatures = m.inFeatures;
    this.rank = m.rank;
    this.b = m.B;
    const scale = m.scale ?? 1;
    const { rank: r, inFeatures: n } = m;
    this.at = new Float64Array(n * r);
    for (let k = 0; k < r; k++)
      for (let j = 0; j < n; j++) this.at[j * r + k] = scale * m.A[k * n + j]!;
    this.brow = new Float64Array(r);
  }

  /** Rows [rowStart, rowEnd) of ΔW into `out` (or a new array), row-major (rowEnd−rowStart) × in. */
  read(rowStart: number, rowEnd: number, out?: Float32Array): Float32Array {
    const { outFeatures, inFeatures: n, rank: r, at, brow, b } = this;
    if (
      !(Number.isInteger(rowStart) && Number.isInteger(rowEnd)) ||
      rowStart < 0 ||
      rowEnd > outFeatures ||
      rowStart > rowEnd
    ) {
      throw new LoraError(`row range [${rowStart}, ${rowEnd}) outside [0, ${outFeatures})`);
    }
    const rows = rowEnd - rowStart;
    const dst = out ?? new Float32Array(rows * n);
    if (dst.length < rows * n)
      throw new LoraError(`output buffer holds ${dst.length} values, need ${rows * n}`);
    for (let i = 0; i < rows; i++) {
      const bi = (rowStart + i) * r;
      for (let k = 0; k < r; k++) brow[k] = b[bi + k]!;
      const oi = i * n;
      if (r === 0) {
        dst.fill(0, oi, oi + n);
        continue;
      }
      for (let j = 0; j < n; j++) {
        const aj = j * r;
        let s = 0;
        for (let k = 0; k < r; k++) s += brow[k]! * at[aj + k]!;
        dst[oi + j] = s;
      }
    }
    return dst;
  }
}

/** Dense ΔW (outFeatures × inFeatures, row-major), or rows [rowStart, rowEnd) of it. */
export function denseDelta(m: FactorPair, rowStart = 0, rowEnd = m.outFeatures): Float32Array {
  return new DeltaRowReader(m).read(rowStart, rowEnd);
}

/** Rows per block so that one block of a matrix with `inFeatures` columns holds ≈ `targetValues`. */
export function rowBlockSize(inFeatures: number, targetValues = 1 << 20): number {
  return Math.max(1, Math.floor(targetValues / Math.max(1, inFeatures)));
}

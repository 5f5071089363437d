import { LoraError } from "./errors.js";
import { type Floats, matmulTransA, smallSvd, thinQr } from "./linalg.js";
import type { LoraModule } from "./module.js";

export interface PrincipalAngles {
  /** cos θ_1 ≥ cos θ_2 ≥ …, min(p, q) values in [0, 1]. */
  cosines: Float64Array;
  /** θ_i in radians, ascending. */
  angles: Float64Array;
}

/**
 * Principal angles between the column spans of X (rows × p) and Y (rows × q), both row-major
 * (Björck & Golub 1973): orthonormalise both by QR, then the singular values of Q_xᵀ Q_y are the
 * cosines. Bases are assumed to have full column rank.
 */
export function principalAngles(
  x: Floats,
  y: Floats,
  rows: number,
  p: number,
  q: number,
): PrincipalAngles {
  if (x.length !== rows * p || y.length !== rows * q) {
    throw new LoraError(
      `bases of ${x.length} and ${y.length} values do not match ${rows}×${p} and ${rows}×${q}`,
    );
  }
  if (p === 0 || q === 0) return { cosines: new Float64Array(0), angles: new Float64Array(0) };
  const qx = thinQr(x, rows, p);
  const qy = thinQr(y, rows, q);
  const m = matmulTransA(qx.q, qy.q, rows, qx.p, qy.p);
  const { s } = smallSvd(m, qx.p, qy.p);
  const cosines = s.map((c) => Math.min(1, Math.max(0, c)));
  return { cosines, angles: cosines.map((c) => Math.acos(c)) };
}

export interface SubspaceOverlap extends PrincipalAngles {
  /** Σ cos²θ_i / min(r_a, r_b): 0 for orthogonal subspaces, 1 when one contains the other. */
  overlap: number;
}

/**
 * Overlap of two LoRA updates' output (column, span of B) or input (row, span of Aᵀ) subspaces.
 * Scale does not matter: only the spans do.
 */
export function subspaceOverlap(
  a: LoraModule,
  b: LoraModule,
  side: "output" | "input" = "output",
): SubspaceOverlap {
  const rows = side === "output" ? a.outFeatures : a.inFeatures;
  const other = side === "output" ? b.outFeatures : b.inFeatures;
  if (rows !== other) throw new LoraError(`${side} dimensions differ: ${rows} vs ${other}`);
  const basis = (m: LoraModule): Floats =>
    side === "output" ? m.B : transposeRows(m.A, m.rank, m.inFeatures);
  const pa = principalAngles(basis(a), basis(b), rows, a.rank, b.rank);
  const k = Math.min(a.rank, b.rank);
  let sum = 0;
  for (const c of pa.cosines) sum += c * c;
  return { ...pa, overlap: k === 0 ? 0 : sum / k };
}

function transposeRows(a: Float32Array, r: number, n: number): Float64Array {
  const t = new Float64Array(n * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < n; j++) t[j * r + k] = a[k * n + j]!;
  return t;
}

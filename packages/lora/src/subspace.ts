import { LoraError } from "./errors.js";
import { type Floats, matmulTransA, smallSvd, thinQr } from "./linalg.js";
import { type LoraModule, validateLoraModule } from "./module.js";

export interface PrincipalAngles {
  /** cos θ_1 ≥ cos θ_2 ≥ …, min(rank X, rank Y) values in [0, 1] (numerical ranks). */
  cosines: Float64Array;
  /** θ_i in radians, ascending. */
  angles: Float64Array;
  /** Numerical rank of X (see RANK_TOLERANCE). */
  rankX: number;
  /** Numerical rank of Y. */
  rankY: number;
}

/**
 * Relative tolerance for the numerical rank of a basis: singular values ≤ RANK_TOLERANCE · σ_max
 * count as zero. Exactly dependent Float32 columns leave ~1e-16·σ_max in Float64, while any
 * independent direction a real LoRA factor carries is far above 1e-10·σ_max.
 */
export const RANK_TOLERANCE = 1e-10;

/**
 * Principal angles between the column spans of X (rows × p) and Y (rows × q), both row-major
 * (Björck & Golub 1973): orthonormal bases of both spans, then the singular values of
 * Q_xᵀ Q_y are the cosines.
 *
 * Rank-deficient bases are handled: Householder QR fills zero or dependent columns with
 * arbitrary orthonormal directions, so each span's basis is Q·U_R[:, :k] from the SVD of R
 * (X = Q R = (Q U_R) S V_Rᵀ), keeping the k singular values above RANK_TOLERANCE·σ_max. (The
 * diagonal of an unpivoted R does not reveal rank: [0, e_1] has diag(R) = 0 but rank 1.)
 * A zero basis has rank 0 and no angles.
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
  const bx = spanBasis(x, rows, p);
  const by = spanBasis(y, rows, q);
  if (bx.k === 0 || by.k === 0) {
    return { cosines: new Float64Array(0), angles: new Float64Array(0), rankX: bx.k, rankY: by.k };
  }
  const m = matmulTransA(bx.q, by.q, rows, bx.k, by.k);
  const { s } = smallSvd(m, bx.k, by.k);
  const cosines = s.map((c) => Math.min(1, Math.max(0, c)));
  return { cosines, angles: cosines.map((c) => Math.acos(c)), rankX: bx.k, rankY: by.k };
}

/** Orthonormal basis (rows × k, row-major) of the column span of a rows × cols matrix. */
function spanBasis(a: Floats, rows: number, cols: number): { q: Float64Array; k: number } {
  if (rows === 0 || cols === 0) return { q: new Float64Array(0), k: 0 };
  for (let i = 0; i < a.length; i++) {
    // A NaN σ_max would make every comparison false and report a silent rank 0.
    if (!Number.isFinite(a[i]!))
      throw new LoraError(`basis value ${i} is ${a[i]}, expected finite`);
  }
  const qr = thinQr(a, rows, cols);
  const svd = smallSvd(qr.r, qr.p, cols);
  const smax = svd.s[0] ?? 0;
  let k = 0;
  while (k < svd.q && svd.s[k]! > RANK_TOLERANCE * smax && smax > 0) k++;
  // Q (rows × p) · U_R[:, :k] (p × k); U_R is p × svd.q row-major.
  const q = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++)
    for (let l = 0; l < qr.p; l++) {
      const qil = qr.q[i * qr.p + l]!;
      if (qil === 0) continue;
      for (let c = 0; c < k; c++) q[i * k + c]! += qil * svd.u[l * svd.q + c]!;
    }
  return { q, k };
}

export interface SubspaceOverlap extends PrincipalAngles {
  /**
   * Σ cos²θ_i / min(k_a, k_b) over the numerical ranks k (see RANK_TOLERANCE): 0 for orthogonal
   * subspaces or when either update is zero, 1 when one span contains the other.
   */
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
  validateLoraModule(a, "subspaceOverlap (first module)");
  validateLoraModule(b, "subspaceOverlap (second module)");
  if (rows !== other) throw new LoraError(`${side} dimensions differ: ${rows} vs ${other}`);
  const basis = (m: LoraModule): Floats =>
    side === "output" ? m.B : transposeRows(m.A, m.rank, m.inFeatures);
  const pa = principalAngles(basis(a), basis(b), rows, a.rank, b.rank);
  const k = Math.min(pa.rankX, pa.rankY);
  let sum = 0;
  for (const c of pa.cosines) sum += c * c;
  return { ...pa, overlap: k === 0 ? 0 : sum / k };
}

function transposeRows(a: Float32Array, r: number, n: number): Float64Array {
  const t = new Float64Array(n * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < n; j++) t[j * r + k] = a[k * n + j]!;
  return t;
}

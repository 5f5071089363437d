/**
 * Small Float64 dense kernels over flat row-major typed arrays: products, thin Householder QR
 * and a one-sided Jacobi SVD. Written by hand: the factor-space algorithms need QR of tall thin
 * matrices (O(m·k²)) and an accurate SVD of a k×k core on flat typed arrays in any JS runtime,
 * and no maintained pure-JS library offers these on flat Float64Arrays without nested-array
 * copies (see the package README).
 */

export type Floats = Float32Array | Float64Array;

/** C = A·B with A: m×k, B: k×n (row-major); C is a new Float64Array m×n. */
export function matmul(a: Floats, b: Floats, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let l = 0; l < k; l++) {
      const ail = a[i * k + l]!;
      if (ail === 0) continue;
      const bl = l * n;
      for (let j = 0; j < n; j++) c[ci + j]! += ail * b[bl + j]!;
    }
  }
  return c;
}

/** C = Aᵀ·B with A: k×m, B: k×n (row-major); C is m×n. */
export function matmulTransA(a: Floats, b: Floats, k: number, m: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let l = 0; l < k; l++) {
    const al = l * m;
    const bl = l * n;
    for (let i = 0; i < m; i++) {
      const ali = a[al + i]!;
      if (ali === 0) continue;
      const ci = i * n;
      for (let j = 0; j < n; j++) c[ci + j]! += ali * b[bl + j]!;
    }
  }
  return c;
}

/** C = A·Bᵀ with A: m×k, B: n×k (row-major); C is m×n. */
export function matmulTransB(a: Floats, b: Floats, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let l = 0; l < k; l++) s += a[ai + l]! * b[bj + l]!;
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Row-major transpose of an m×n matrix. */
export function transpose(a: Floats, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

export interface ThinQr {
  /** rows × p, orthonormal columns, row-major. */
  q: Float64Array;
  /** p × cols, upper triangular, row-major. */
  r: Float64Array;
  /** min(rows, cols). */
  p: number;
}

/**
 * Thin QR by Householder reflections (Golub & Van Loan, Alg. 5.2.1) of a row-major
 * rows × cols matrix, or of its transpose when `transposed` is set (then `a` is cols × rows as
 * stored). Float64 throughout; Q always has orthonormal columns, also for rank-deficient input.
 */
export function thinQr(a: Floats, rows: number, cols: number, transposed = false): ThinQr {
  const m = rows;
  const k = cols;
  const p = Math.min(m, k);
  // Column-major working copy: every reflector touches whole columns, so keep them contiguous.
  const w = new Float64Array(m * k);
  if (transposed) {
    // a is k × m row-major: its row c is column c of the matrix we factor.
    w.set(a.subarray(0, m * k));
  } else {
    for (let i = 0; i < m; i++) for (let c = 0; c < k; c++) w[c * m + i] = a[i * k + c]!;
  }
  const vs: Float64Array[] = [];
  const betas = new Float64Array(p);
  const diag = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const col = j * m;
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += w[col + i]! * w[col + i]!;
    const v = new Float64Array(m - j);
    vs.push(v);
    if (norm2 === 0) {
      betas[j] = 0;
      diag[j] = 0;
      continue;
    }
    const norm = Math.sqrt(norm2);
    const xj = w[col + j]!;
    // Reflect onto -sign(x_j)·‖x‖ e_j so that v_j = x_j - alpha never cancels.
    const alpha = xj >= 0 ? -norm : norm;
    for (let i = j; i < m; i++) v[i - j] = w[col + i]!;
    v[0] = xj - alpha;
    const vnorm2 = norm2 - xj * xj + v[0]! * v[0]!;
    const beta = vnorm2 === 0 ? 0 : 2 / vnorm2;
    betas[j] = beta;
    diag[j] = alpha;
    for (let c = j + 1; c < k; c++) {
      const cc = c * m;
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * w[cc + i]!;
      const f = beta * dot;
      if (f === 0) continue;
      for (let i = j; i < m; i++) w[cc + i]! -= f * v[i - j]!;
    }
  }
  const r = new Float64Array(p * k);
  for (let i = 0; i < p; i++) {
    r[i * k + i] = diag[i]!;
    for (let c = i + 1; c < k; c++) r[i * k + c] = w[c * m + i]!;
  }
  // Q = H_0 · … · H_{p-1} · I[:, :p], applied right to left; H_j leaves columns c < j alone.
  const qc = new Float64Array(m * p);
  for (let c = 0; c < p; c++) qc[c * m + c] = 1;
  for (let j = p - 1; j >= 0; j--) {
    const beta = betas[j]!;
    if (beta === 0) continue;
    const v = vs[j]!;
    for (let c = j; c < p; c++) {
      const cc = c * m;
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * qc[cc + i]!;
      const f = beta * dot;
      if (f === 0) continue;
      for (let i = j; i < m; i++) qc[cc + i]! -= f * v[i - j]!;
    }
  }
  const q = new Float64Array(m * p);
  for (let c = 0; c < p; c++) for (let i = 0; i < m; i++) q[i * p + c] = qc[c * m + i]!;
  return { q, r, p };
}

export interface SmallSvd {
  /** rows × q, row-major; columns for exactly-zero singular values are zero. */
  u: Float64Array;
  /** q singular values, descending. */
  s: Float64Array;
  /** cols × q, row-major. */
  v: Float64Array;
  /** min(rows, cols). */
  q: number;
}

/**
 * SVD of a small dense row-major rows × cols matrix by one-sided Jacobi rotations
 * (Hestenes 1958; Demmel & Veselić 1992): accurate to working precision in Float64, also for
 * tiny singular values. O(sweeps · rows · cols²); meant for cores of a few hundred columns.
 */
export function smallSvd(a: Floats, rows: number, cols: number): SmallSvd {
  if (rows < cols) {
    const t = smallSvd(transpose(a, rows, cols), cols, rows);
    return { u: t.v, s: t.s, v: t.u, q: t.q };
  }
  const m = rows;
  const n = cols;
  const w = new Float64Array(m * n); // column-major copy of a
  for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) w[c * m + i] = a[i * n + c]!;
  const vm = new Float64Array(n * n); // column-major V
  for (let c = 0; c < n; c++) vm[c * n + c] = 1;
  const eps = 2.220446049250313e-16;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const pc = p * m;
      for (let q = p + 1; q < n; q++) {
        const qc = q * m;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = w[pc + i]!;
          const y = w[qc + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (alpha === 0 || beta === 0) continue;
        if (Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = w[pc + i]!;
          const y = w[qc + i]!;
          w[pc + i] = c * x - s * y;
          w[qc + i] = s * x + c * y;
        }
        const pv = p * n;
        const qv = q * n;
        for (let i = 0; i < n; i++) {
          const x = vm[pv + i]!;
          const y = vm[qv + i]!;
          vm[pv + i] = c * x - s * y;
          vm[qv + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += w[c * m + i]! * w[c * m + i]!;
    norms[c] = Math.sqrt(s);
  }
  // Descending by singular value; ties keep column order so the result is deterministic.
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (x, y) => norms[y]! - norms[x]! || x - y,
  );
  const u = new Float64Array(m * n);
  const s = new Float64Array(n);
  const v = new Float64Array(n * n);
  order.forEach((src, dst) => {
    const sv = norms[src]!;
    s[dst] = sv;
    if (sv > 0) for (let i = 0; i < m; i++) u[i * n + dst] = w[src * m + i]! / sv;
    for (let i = 0; i < n; i++) v[i * n + dst] = vm[src * n + i]!;
  });
  return { u, s, v, q: n };
}

export interface SymmetricEigen {
  /** n eigenvalues, descending. */
  values: Float64Array;
  /** n × n row-major; column c is the unit eigenvector of values[c]. */
  vectors: Float64Array;
  n: number;
}

/**
 * Eigendecomposition A = Q·diag(λ)·Qᵀ of a small dense symmetric n × n matrix (row-major; only
 * its symmetric part is used) by cyclic two-sided Jacobi rotations (Golub & Van Loan, Alg. 8.5.3).
 * A pair is rotated until |a_pq| ≤ ε·√|a_pp·a_qq|, which for positive (semi)definite input gives
 * the small eigenvalues to high relative accuracy (Demmel & Veselić 1992), as matrix functions
 * like A^(−1/2) need. O(sweeps · n³); meant for cores of a few hundred rows.
 */
export function symmetricEigen(a: Floats, n: number): SymmetricEigen {
  if (a.length !== n * n)
    throw new RangeError(`symmetricEigen: expected ${n * n} entries, got ${a.length}`);
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) w[i * n + j] = 0.5 * (a[i * n + j]! + a[j * n + i]!);
  const q = new Float64Array(n * n); // row-major, columns are eigenvectors
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  const eps = 2.220446049250313e-16;
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let r = p + 1; r < n; r++) {
        const apr = w[p * n + r]!;
        if (apr === 0) continue;
        const app = w[p * n + p]!;
        const arr = w[r * n + r]!;
        if (Math.abs(apr) <= eps * Math.sqrt(Math.abs(app * arr))) continue;
        rotated = true;
        // Rotation zeroing a_pr: t = tan θ, the smaller root of t² + 2ζt − 1 = 0.
        const zeta = (arr - app) / (2 * apr);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        // A ← Jᵀ A J with J = rotation in the (p, r) plane: columns, then rows.
        for (let k = 0; k < n; k++) {
          const x = w[k * n + p]!;
          const y = w[k * n + r]!;
          w[k * n + p] = c * x - s * y;
          w[k * n + r] = s * x + c * y;
        }
        for (let k = 0; k < n; k++) {
          const x = w[p * n + k]!;
          const y = w[r * n + k]!;
          w[p * n + k] = c * x - s * y;
          w[r * n + k] = s * x + c * y;
        }
        w[p * n + r] = 0;
        w[r * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const x = q[k * n + p]!;
          const y = q[k * n + r]!;
          q[k * n + p] = c * x - s * y;
          q[k * n + r] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  // Descending; ties keep index order so the result is deterministic.
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (x, y) => w[y * n + y]! - w[x * n + x]! || x - y,
  );
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = w[src * n + src]!;
    for (let k = 0; k < n; k++) vectors[k * n + dst] = q[k * n + src]!;
  });
  return { values, vectors, n };
}

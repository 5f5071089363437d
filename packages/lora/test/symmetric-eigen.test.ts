import { describe, expect, it } from "vitest";
import { Rng, symmetricEigen, thinQr } from "../src/index.js";
import { naiveMul, naiveTranspose, orthonormalityError, randomMatrix, relErr } from "./helpers.js";

const rng = new Rng(31);

/** Q·diag(λ)·Qᵀ for a random orthogonal Q (from QR of a Gaussian matrix). */
function withSpectrum(lambda: number[]): { a: Float64Array; q: Float64Array } {
  const n = lambda.length;
  const { q } = thinQr(randomMatrix(rng, n, n), n, n);
  const ql = Float64Array.from(q, (x, i) => x * lambda[i % n]!);
  return { a: naiveMul(ql, naiveTranspose(q, n, n), n, n, n), q };
}

describe("symmetricEigen", () => {
  it("recovers a known spectrum (repeated, zero and negative eigenvalues) and reconstructs A", () => {
    const lambda = [5, 2, 2, 0.5, 0, -1, -3];
    const n = lambda.length;
    const { a } = withSpectrum(lambda);
    const { values, vectors } = symmetricEigen(a, n);
    for (let k = 0; k < n; k++) expect(Math.abs(values[k]! - lambda[k]!)).toBeLessThan(1e-12);
    expect(orthonormalityError(vectors, n, n)).toBeLessThan(1e-12);
    const scaled = Float64Array.from(vectors, (x, i) => x * values[i % n]!);
    expect(relErr(naiveMul(scaled, naiveTranspose(vectors, n, n), n, n, n), a)).toBeLessThan(1e-12);
  });

  it("gets the small eigenvalues of a graded positive definite matrix to relative accuracy", () => {
    // A = D·H·D with H well conditioned: Jacobi's relative criterion keeps λ_min accurate even
    // though it is 1e-16 of λ_max (an absolute-threshold solver would return noise there).
    const n = 4;
    const d = [1, 1e-3, 1e-6, 1e-8];
    const h = [4, 1, 0.5, 0.2, 1, 3, 0.4, 0.1, 0.5, 0.4, 2, 0.3, 0.2, 0.1, 0.3, 1];
    const a = Float64Array.from(h, (x, i) => d[Math.floor(i / n)]! * x * d[i % n]!);
    const { values, vectors } = symmetricEigen(a, n);
    // Each eigenpair satisfies A v = λ v to relative accuracy in λ.
    for (let k = 0; k < n; k++) {
      const lam = values[k]!;
      expect(lam).toBeGreaterThan(0);
      let rayleigh = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++)
          rayleigh += vectors[i * n + k]! * a[i * n + j]! * vectors[j * n + k]!;
      expect(Math.abs(rayleigh - lam) / lam).toBeLessThan(1e-8);
    }
    // det(A) = det(H)·Π d_i², computed independently of the solver.
    const detH = det4(h);
    const detA = detH * d.reduce((p, x) => p * x * x, 1);
    expect(Math.abs(values.reduce((p, x) => p * x, 1) / detA - 1)).toBeLessThan(1e-8);
  });

  it("sorts a diagonal matrix, keeps identity vectors up to order, and handles n = 0 and 1", () => {
    const { values, vectors } = symmetricEigen(Float64Array.from([1, 0, 0, 0, 3, 0, 0, 0, 2]), 3);
    expect(Array.from(values)).toEqual([3, 2, 1]);
    expect(Array.from(vectors)).toEqual([0, 0, 1, 1, 0, 0, 0, 1, 0]);
    expect(symmetricEigen(new Float64Array(0), 0).values.length).toBe(0);
    expect(Array.from(symmetricEigen(Float64Array.from([-2]), 1).values)).toEqual([-2]);
  });

  it("rejects a buffer of the wrong size", () => {
    expect(() => symmetricEigen(new Float64Array(5), 2)).toThrow(/expected 4 entries, got 5/);
  });
});

/** Determinant of a row-major 4 × 4 matrix by cofactor expansion (independent reference). */
function det4(m: number[]): number {
  const det3 = (a: number[]) =>
    a[0]! * (a[4]! * a[8]! - a[5]! * a[7]!) -
    a[1]! * (a[3]! * a[8]! - a[5]! * a[6]!) +
    a[2]! * (a[3]! * a[7]! - a[4]! * a[6]!);
  let s = 0;
  for (let c = 0; c < 4; c++) {
    const minor: number[] = [];
    for (let i = 1; i < 4; i++) for (let j = 0; j < 4; j++) if (j !== c) minor.push(m[i * 4 + j]!);
    s += (c % 2 === 0 ? 1 : -1) * m[c]! * det3(minor);
  }
  return s;
}

import { describe, expect, it } from "vitest";
import { Rng, smallSvd, thinQr } from "../src/index.js";
import { naiveMul, naiveTranspose, orthonormalityError, randomMatrix, relErr } from "./helpers.js";

const rng = new Rng(11);

describe("thinQr", () => {
  for (const [m, k] of [
    [40, 7],
    [7, 7],
    [5, 9],
  ] as const) {
    it(`${m}×${k}: Q orthonormal, R upper triangular, QR = A`, () => {
      const a = randomMatrix(rng, m, k);
      const { q, r, p } = thinQr(a, m, k);
      expect(p).toBe(Math.min(m, k));
      expect(orthonormalityError(q, m, p)).toBeLessThan(1e-12);
      for (let i = 0; i < p; i++)
        for (let j = 0; j < Math.min(i, k); j++) expect(r[i * k + j]).toBe(0);
      expect(relErr(naiveMul(q, r, m, p, k), a)).toBeLessThan(1e-12);
    });
  }

  it("factors the transpose when asked", () => {
    const a = randomMatrix(rng, 6, 30); // QR of aᵀ (30 × 6)
    const { q, r, p } = thinQr(a, 30, 6, true);
    expect(relErr(naiveMul(q, r, 30, p, 6), naiveTranspose(a, 6, 30))).toBeLessThan(1e-12);
  });

  it("keeps Q orthonormal for rank-deficient input", () => {
    const a = randomMatrix(rng, 20, 4);
    for (let i = 0; i < 20; i++) {
      a[i * 4 + 2] = a[i * 4]! * 2; // column 2 = 2·column 0
      a[i * 4 + 3] = 0;
    }
    const { q, r } = thinQr(a, 20, 4);
    expect(orthonormalityError(q, 20, 4)).toBeLessThan(1e-12);
    expect(relErr(naiveMul(q, r, 20, 4, 4), a)).toBeLessThan(1e-12);
  });
});

describe("smallSvd", () => {
  for (const [m, n] of [
    [12, 5],
    [5, 12],
    [9, 9],
  ] as const) {
    it(`${m}×${n}: U S Vᵀ = A, orthonormal factors, descending S`, () => {
      const a = randomMatrix(rng, m, n);
      const { u, s, v, q } = smallSvd(a, m, n);
      expect(orthonormalityError(u, m, q)).toBeLessThan(1e-12);
      expect(orthonormalityError(v, n, q)).toBeLessThan(1e-12);
      for (let i = 1; i < q; i++) expect(s[i]!).toBeLessThanOrEqual(s[i - 1]!);
      const us = u.map((x, idx) => x * s[idx % q]!);
      expect(relErr(naiveMul(us, naiveTranspose(v, n, q), m, q, n), a)).toBeLessThan(1e-12);
    });
  }

  it("a diagonal matrix gives its sorted absolute diagonal", () => {
    const a = new Float64Array([0, 0, 0, 0, -3, 0, 0, 0, 1]);
    expect(Array.from(smallSvd(a, 3, 3).s)).toEqual([3, 1, 0]);
  });
});

import { describe, expect, it } from "vitest";
import { type LoraModule, principalAngles, Rng, subspaceOverlap } from "../src/index.js";
import { randomMatrix } from "./helpers.js";

// Hand cases whose angles are known analytically; no reference library involved.
const ROWS = 6;

/** Unit vector e_i in R^ROWS. */
function e(i: number): number[] {
  return Array.from({ length: ROWS }, (_, k) => (k === i ? 1 : 0));
}

const zero = (): number[] => new Array<number>(ROWS).fill(0);
const add = (a: number[], b: number[], s = 1): number[] => a.map((x, i) => x + s * b[i]!);
const scale = (a: number[], s: number): number[] => a.map((x) => x * s);

/** Row-major ROWS × columns.length matrix from its columns. */
function fromColumns(columns: number[][]): Float32Array {
  const c = columns.length;
  const out = new Float32Array(ROWS * c);
  columns.forEach((col, j) => {
    for (let i = 0; i < ROWS; i++) out[i * c + j] = col[i]!;
  });
  return out;
}

/** A module whose output basis B has the given columns (A is a fixed well-conditioned matrix). */
function withB(columns: number[][]): LoraModule {
  const r = columns.length;
  return {
    A: randomMatrix(new Rng(3), r, 4),
    B: fromColumns(columns),
    rank: r,
    inFeatures: 4,
    outFeatures: ROWS,
    scale: 1,
  };
}

function angles(x: number[][], y: number[][]) {
  return principalAngles(fromColumns(x), fromColumns(y), ROWS, x.length, y.length);
}

describe("principal angles, hand cases", () => {
  it("identical spans: every angle 0, whatever the basis", () => {
    const x = [e(0), e(1)];
    const y = [add(e(0), e(1)), add(e(0), e(1), -3)]; // same span, other basis
    const pa = angles(x, y);
    expect(pa.rankX).toBe(2);
    expect(pa.rankY).toBe(2);
    for (const t of pa.angles) expect(t).toBeCloseTo(0, 7);
    expect(subspaceOverlap(withB(x), withB(y)).overlap).toBeCloseTo(1, 12);
  });

  it("orthogonal spans: every angle π/2, overlap 0", () => {
    const pa = angles([e(0), e(1)], [e(2), e(3), e(4)]);
    expect([...pa.angles]).toHaveLength(2);
    for (const t of pa.angles) expect(t).toBeCloseTo(Math.PI / 2, 12);
    expect(subspaceOverlap(withB([e(0), e(1)]), withB([e(2), e(3), e(4)])).overlap).toBe(0);
  });

  it("partially overlapping spans: angles 0 and t, overlap (1 + cos² t) / 2", () => {
    const t = 0.7;
    const tilted = add(scale(e(1), Math.cos(t)), scale(e(2), Math.sin(t)));
    // span{e0, e1} vs span{e0 + tilted, e0 − 2·tilted} = span{e0, tilted}
    const y = [add(e(0), tilted), add(e(0), tilted, -2)];
    const pa = angles([e(0), e(1)], y);
    expect(pa.angles[0]).toBeCloseTo(0, 6);
    expect(pa.angles[1]).toBeCloseTo(t, 6);
    const o = subspaceOverlap(withB([e(0), e(1)]), withB(y));
    expect(o.overlap).toBeCloseTo((1 + Math.cos(t) ** 2) / 2, 6);
  });

  it("a single tilted direction: angle t", () => {
    const t = 1.1;
    const pa = angles([e(3)], [add(scale(e(3), Math.cos(t)), scale(e(5), Math.sin(t)))]);
    expect(pa.angles[0]).toBeCloseTo(t, 6);
  });
});

describe("rank-deficient and zero bases", () => {
  it("[e1, 0] vs [e2]: overlap 0, not 1 (the zero column adds no direction)", () => {
    const o = subspaceOverlap(withB([e(0), zero()]), withB([e(1)]));
    expect(o.rankX).toBe(1);
    expect(o.overlap).toBe(0);
    expect(o.angles[0]).toBeCloseTo(Math.PI / 2, 12);
  });

  it("[0, e1] vs [e1]: overlap 1 (a leading zero column does not hide the rank)", () => {
    const o = subspaceOverlap(withB([zero(), e(0)]), withB([e(0)]));
    expect(o.rankX).toBe(1);
    expect(o.overlap).toBeCloseTo(1, 12);
  });

  it("dependent columns [e1, 2e1, e2] vs [e1, e3]: ranks 2 and 2, cosines 1 and 0", () => {
    const o = subspaceOverlap(withB([e(0), scale(e(0), 2), e(1)]), withB([e(0), e(2)]));
    expect(o.rankX).toBe(2);
    expect(o.rankY).toBe(2);
    expect(o.cosines).toHaveLength(2);
    expect(o.cosines[0]).toBeCloseTo(1, 12);
    expect(o.cosines[1]).toBeCloseTo(0, 12);
    expect(o.overlap).toBeCloseTo(0.5, 12);
  });

  it("dependent columns spanning the other basis: overlap 1", () => {
    const x = [e(0), add(e(0), e(1)), e(1)]; // rank 2
    const o = subspaceOverlap(withB(x), withB([add(e(0), e(1), -1)]));
    expect(o.rankX).toBe(2);
    expect(o.overlap).toBeCloseTo(1, 12);
  });

  it("a zero update has rank 0: overlap 0 and no angles", () => {
    const pairs: Array<[number[][], number[][]]> = [
      [[zero()], [e(0)]],
      [[e(0)], [zero(), zero()]],
      [[zero()], [zero()]],
    ];
    for (const [a, b] of pairs) {
      const o = subspaceOverlap(withB(a), withB(b));
      expect(o.overlap).toBe(0);
      expect(o.angles).toHaveLength(0);
      expect(o.cosines).toHaveLength(0);
    }
  });

  it("rank-0 modules give overlap 0", () => {
    const empty: LoraModule = {
      A: new Float32Array(0),
      B: new Float32Array(0),
      rank: 0,
      inFeatures: 4,
      outFeatures: ROWS,
      scale: 1,
    };
    const o = subspaceOverlap(empty, withB([e(0)]));
    expect(o.overlap).toBe(0);
    expect(o.angles).toHaveLength(0);
  });

  it("input side: A with a repeated row counts once", () => {
    // Rows of A are the input directions; a duplicate row adds no direction.
    const mk = (rows: number[][]): LoraModule => ({
      A: Float32Array.from(rows.flat()),
      B: randomMatrix(new Rng(9), ROWS, rows.length),
      rank: rows.length,
      inFeatures: ROWS,
      outFeatures: ROWS,
      scale: 1,
    });
    const o = subspaceOverlap(mk([e(0), e(0)]), mk([e(1), e(2)]), "input");
    expect(o.rankX).toBe(1);
    expect(o.overlap).toBe(0);
    expect(subspaceOverlap(mk([e(0), e(0)]), mk([e(0), e(2)]), "input").overlap).toBeCloseTo(1, 12);
  });
});

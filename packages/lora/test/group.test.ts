import { describe, expect, it } from "vitest";
import { groupByModule, type LoraModule, LoraError } from "../src/index.js";

const mod = (out: number, inF: number, rank: number): LoraModule => ({
  A: new Float32Array(rank * inF),
  B: new Float32Array(out * rank),
  rank,
  inFeatures: inF,
  outFeatures: out,
  scale: 1,
});

describe("groupByModule", () => {
  it("groups by module, sorted, null where an expert lacks one; ranks may differ", () => {
    const groups = groupByModule([
      new Map([
        ["b.q", mod(4, 3, 2)],
        ["a.k", mod(2, 3, 2)],
      ]),
      { "b.q": mod(4, 3, 5) },
    ]);
    expect(groups.map((g) => g.module)).toEqual(["a.k", "b.q"]);
    expect(groups[0]!.experts[1]).toBeNull();
    expect(groups[1]!.experts.map((e) => e?.rank)).toEqual([2, 5]);
    expect([groups[1]!.outFeatures, groups[1]!.inFeatures]).toEqual([4, 3]);
  });
  it("rejects shape disagreements, naming module and experts", () => {
    expect(() => groupByModule([{ q: mod(4, 3, 1) }, { q: mod(4, 5, 1) }])).toThrow(
      /q: expert 1 is 4×5 but expert 0 is 4×3/,
    );
    expect(() => groupByModule([{ q: { ...mod(4, 3, 1), rank: 2 } }])).toThrow(LoraError);
  });
});

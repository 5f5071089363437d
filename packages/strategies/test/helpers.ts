import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { LoraModule, Rng } from "@merge/lora";
import type { MergeResult, ModuleMergeInput } from "../src/index.js";

export function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", name), "utf8")) as T;
}

/** ‖a − b‖_F / ‖b‖_F (absolute when b = 0). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** The merge result as a dense out × in Float64 matrix (naive product, independent of the code under test). */
export function densify(r: MergeResult): Float64Array {
  if (r.kind === "dense") return Float64Array.from(r.delta);
  if (r.kind === "routed") throw new Error("densify: a routed result has no single ΔW");
  const { outFeatures: m, inFeatures: n, rank: k, A, B } = r;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += B[i * k + l]! * A[l * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}

/** Dense scale·B·A of a module, naive. */
export function denseOf(e: LoraModule): Float64Array {
  return densify({
    kind: "lowrank",
    A: e.A,
    B: e.B.map((x) => x * e.scale),
    rank: e.rank,
    outFeatures: e.outFeatures,
    inFeatures: e.inFeatures,
  });
}

export function randomExpert(
  rng: Rng,
  out: number,
  inF: number,
  rank: number,
  scale = 1,
): LoraModule {
  const g = (n: number) => Float32Array.from({ length: n }, () => rng.nextGaussian() * 0.5);
  return { A: g(rank * inF), B: g(out * rank), rank, inFeatures: inF, outFeatures: out, scale };
}

export function input(
  experts: Array<LoraModule | null>,
  out = 24,
  inF = 40,
  module = "model.layers.0.self_attn.q_proj",
): ModuleMergeInput {
  return { module, outFeatures: out, inFeatures: inF, experts };
}

import { deriveSeed, Rng } from "@merge/lora";
import { StrategyError } from "./types.js";

/**
 * Where DARE's keep/drop decisions come from. `fill` writes 1 (keep) or 0 (drop) for `count`
 * entries of expert `expert`'s ΔW starting at row-major `offset`; blocks arrive in order.
 */
export interface DropMaskSource {
  fill(expert: number, offset: number, keep: Uint8Array, count: number): void;
}

/**
 * Seeded masks: expert i's mask is a xoshiro128** stream seeded by (seed, module, i), so a
 * module's mask does not depend on which other modules were merged before it. An entry is kept
 * with probability 1 − p (Yu et al. 2024).
 */
export function seededDropMasks(
  seed: number,
  module: string,
  p: number,
  label = "dare",
): DropMaskSource {
  const streams = new Map<number, { rng: Rng; next: number }>();
  return {
    fill(expert, offset, keep, count) {
      let s = streams.get(expert);
      if (s === undefined) {
        s = { rng: new Rng(deriveSeed(seed, label, module, expert)), next: 0 };
        streams.set(expert, s);
      }
      if (offset !== s.next) {
        throw new StrategyError(
          `drop mask for expert ${expert} asked for offset ${offset}, expected ${s.next}`,
          module,
        );
      }
      // u ≥ p with u = k/2³² uniform on the 32-bit grid, compared as integers.
      const threshold = Math.ceil(p * 4294967296);
      const rng = s.rng;
      for (let i = 0; i < count; i++) keep[i] = rng.nextUint32() >= threshold ? 1 : 0;
      s.next += count;
    },
  };
}

/** Given masks (e.g. from a reference implementation): masks[i] is expert i's out×in keep mask. */
export function fixedDropMasks(
  masks: ReadonlyArray<Uint8Array | null>,
  module?: string,
): DropMaskSource {
  return {
    fill(expert, offset, keep, count) {
      const mask = masks[expert];
      if (mask === null || mask === undefined) {
        throw new StrategyError(`no drop mask given for expert ${expert}`, module);
      }
      if (offset + count > mask.length) {
        throw new StrategyError(
          `drop mask for expert ${expert} has ${mask.length} entries, need ${offset + count}`,
          module,
        );
      }
      keep.set(mask.subarray(offset, offset + count));
    },
  };
}

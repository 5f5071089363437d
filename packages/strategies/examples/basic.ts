// Run: node --conditions=source --import tsx packages/strategies/examples/basic.ts
import { type LoraModule, Rng } from "@merge/lora";
import {
  DEFAULT_STRATEGY,
  getStrategy,
  listStrategies,
  routedForward,
  type ModuleMergeInput,
  toLowRank,
} from "@merge/strategies";

const rng = new Rng(1);
const randn = (n: number) => Float32Array.from({ length: n }, () => rng.nextGaussian() * 0.1);
const expert = (rank: number): LoraModule => ({
  A: randn(rank * 40),
  B: randn(24 * rank),
  rank,
  inFeatures: 40,
  outFeatures: 24,
  scale: 2,
});

// One module across three experts; the third expert does not adapt this module.
const input: ModuleMergeInput = {
  module: "model.layers.0.self_attn.q_proj",
  outFeatures: 24,
  inFeatures: 40,
  experts: [expert(4), expert(8), null],
};

for (const s of listStrategies())
  console.log(`${s.name.padEnd(20)} defaults ${JSON.stringify(s.defaults)}`);

// The default, lift_routing, keeps every expert and a router; routedForward applies it to inputs.
const routed = getStrategy(DEFAULT_STRATEGY).merge(input, {}, { seed: 0 });
if (routed.kind === "routed") {
  const x = Float32Array.from({ length: 40 }, (_, j) => routed.experts[1]!.A[j]!); // in expert 1's subspace
  const { gates } = routedForward(routed, x, 1);
  console.log(
    `${DEFAULT_STRATEGY}: routed result, gates for x = [${[...gates].map((g) => g.toFixed(2))}]`,
  );
}

// A static merge: one low-rank update for every input.
const merged = getStrategy("osm").merge(input, {}, { seed: 0 });
console.log(
  `osm: ${merged.kind} result`,
  merged.kind === "lowrank" ? `of rank ${merged.rank}` : "",
);

// TIES gives a dense ΔW; turn it into rank-8 LoRA factors for a PEFT adapter, with the error.
const ties = getStrategy("ties").merge(
  input,
  { density: 0.2 },
  { seed: 0, expertWeights: [1, 0.5, 1] },
);
const { factors, relativeError } = toLowRank(ties, { rank: 8, seed: 0 });
console.log(`ties → rank ${factors.rank} factors, relative error ${relativeError.toFixed(3)}`);

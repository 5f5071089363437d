// `pnpm --filter @merge/strategies bench:reference`: merge time of each method at the reference
// setting's shapes — Mistral-7B (32 layers; q_proj 4096×4096, v_proj 1024×4096), five experts,
// r = 8, lora_alpha 16 — on one thread (JS is single-threaded; this measures one core).
// Env: REF_METHODS (comma list, default lift_routing,energy_iso,linear,iso_c,tsv_m,smile), REF_LAYERS (32).
import { cpus, loadavg } from "node:os";
import { type LoraModule, Rng } from "@merge/lora";
import { getStrategy } from "../src/index.js";

const LAYERS = Number(process.env.REF_LAYERS ?? 32);
const METHODS = (
  process.env.REF_METHODS ?? "lift_routing,energy_iso,linear,iso_c,tsv_m,smile"
).split(",");
const SHAPES = [
  { name: "self_attn.q_proj", out: 4096, in: 4096 },
  { name: "self_attn.v_proj", out: 1024, in: 4096 },
];
const EXPERTS = 5;
const RANK = 8;

const rng = new Rng(20261201);
const randn = (n: number, s: number) =>
  Float32Array.from({ length: n }, () => rng.nextGaussian() * s);
// One layer's experts, reused for every layer (the merge cost does not depend on the values).
const experts = SHAPES.map((sh) =>
  Array.from(
    { length: EXPERTS },
    (): LoraModule => ({
      A: randn(RANK * sh.in, 0.02),
      B: randn(sh.out * RANK, 0.01),
      rank: RANK,
      inFeatures: sh.in,
      outFeatures: sh.out,
      scale: 16 / RANK,
    }),
  ),
);

console.log(
  `reference shapes: ${LAYERS} layers × {q 4096×4096, v 1024×4096}, ${EXPERTS} experts, r ${RANK}; ${cpus()[0]?.model ?? "cpu"}, load ${loadavg()[0]!.toFixed(1)}`,
);
console.log("| method | result | merge s (all modules, one core) | per module ms |");
console.log("| --- | --- | ---: | ---: |");
for (const name of METHODS) {
  const s = getStrategy(name);
  const t0 = performance.now();
  let modules = 0;
  for (let l = 0; l < LAYERS; l++) {
    SHAPES.forEach((sh, i) => {
      s.merge(
        {
          module: `model.layers.${l}.${sh.name}`,
          outFeatures: sh.out,
          inFeatures: sh.in,
          experts: experts[i]!,
        },
        {},
        { seed: 0 },
      );
      modules++;
    });
  }
  const sec = (performance.now() - t0) / 1000;
  console.log(
    `| ${name} | ${s.resultKind} | ${sec.toFixed(2)} | ${((sec * 1000) / modules).toFixed(1)} |`,
  );
}

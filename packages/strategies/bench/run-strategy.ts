// Child process of bench.ts: merges every module of the factor file with one strategy, streaming
// module by module (read one module's factors for all experts, merge, drop), and prints one JSON
// line with wall time and peak RSS so each strategy's peak is measured in isolation.
import { open } from "node:fs/promises";
import type { LoraModule } from "@merge/lora";
import { getStrategy, type MergeResult } from "../src/index.js";
import { type BenchLayout, factorOffset, MISTRAL_MODULES } from "./shapes.js";

const [file, layersArg, expertsArg, rankArg, alphaArg, name, hyperJson] = process.argv.slice(2);
const layout: BenchLayout = {
  layers: Number(layersArg),
  experts: Number(expertsArg),
  rank: Number(rankArg),
  alpha: Number(alphaArg),
};
const strategy = getStrategy(name!);
const hyper = JSON.parse(hyperJson ?? "{}") as Record<string, unknown>;
const fh = await open(file!, "r");

async function readFloats(offset: number, count: number): Promise<Float32Array> {
  const buf = new Uint8Array(count * 4);
  await fh.read(buf, 0, buf.length, offset);
  return new Float32Array(buf.buffer, 0, count);
}

let checksum = 0;
let mergeSeconds = 0;
let cpuMicros = 0;
const t0 = performance.now();
for (let layer = 0; layer < layout.layers; layer++) {
  for (let mi = 0; mi < MISTRAL_MODULES.length; mi++) {
    const shape = MISTRAL_MODULES[mi]!;
    const experts: LoraModule[] = [];
    for (let e = 0; e < layout.experts; e++) {
      const off = factorOffset(layout, layer, mi, e);
      const r = layout.rank;
      experts.push({
        A: await readFloats(off, r * shape.in),
        B: await readFloats(off + r * shape.in * 4, shape.out * r),
        rank: r,
        inFeatures: shape.in,
        outFeatures: shape.out,
        scale: layout.alpha / r,
      });
    }
    const t = performance.now();
    const cpu = process.cpuUsage();
    const result: MergeResult = strategy.merge(
      {
        module: `model.layers.${layer}.${shape.name}`,
        outFeatures: shape.out,
        inFeatures: shape.in,
        experts,
      },
      hyper,
      { seed: 0 },
    );
    mergeSeconds += (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    cpuMicros += used.user + used.system;
    const first =
      result.kind === "dense"
        ? result.delta
        : result.kind === "lowrank"
          ? result.B
          : (result.experts.find((e) => e !== null)?.B ?? []);
    checksum += first[0] ?? 0;
  }
}
await fh.close();
const wall = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    side: "ours",
    strategy: name,
    seconds: wall,
    mergeSeconds,
    cpuSeconds: cpuMicros / 1e6,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    checksum,
  }),
);

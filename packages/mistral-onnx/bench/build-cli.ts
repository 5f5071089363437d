// Builds one ONNX model and prints {buildS, cpuS, dataBytes, peakRssMb, layerS, otherS} as JSON;
// used by the device (big-model) benchmark and bench/build-speed.ts, where each build runs in
// its own process (so peak RSS is that build's).
// Usage: build-cli <modelDir> <outDir> <none|int8|int4> [fp32|fp16] [buildThreads]
import { readFileSync, statSync } from "node:fs";
import { buildOnnxModel, type ModelDtype, type WeightQuant } from "../src/index.js";

const [modelDir, outDir, quant, dtype = "fp32", threads] = process.argv.slice(2) as [
  string,
  string,
  WeightQuant,
  ModelDtype?,
  string?,
];
const t0 = performance.now();
const cpu0 = process.cpuUsage();
// Seconds spent in decoder-layer steps vs the rest (embedding, final norm, lm_head, graph
// encoding), so a 2-layer stand-in can be projected to 32 layers.
let last = t0;
let layerS = 0;
const { onnxPath } = await buildOnnxModel({
  modelDir,
  outDir,
  weightQuant: quant,
  dtype,
  ...(threads ? { buildThreads: Number(threads) } : {}),
  onProgress: (_done, _total, what) => {
    const now = performance.now();
    if (what.startsWith("model.layers.")) layerS += (now - last) / 1000;
    last = now;
  },
});
const buildS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
console.log(
  JSON.stringify({
    buildS,
    cpuS: (cpu.user + cpu.system) / 1e6,
    dataBytes: statSync(`${onnxPath}.data`).size,
    peakRssMb: hwm ? Number(hwm[1]) / 1024 : null,
    layerS,
    otherS: buildS - layerS,
  }),
);

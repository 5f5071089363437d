// Builds one ONNX model and prints {buildS, dataBytes, peakRssMb} as JSON; used by the device
// (big-model) benchmark, where each step runs in its own process.
// Usage: build-cli <modelDir> <outDir> <none|int8|int4>
import { readFileSync, statSync } from "node:fs";
import { buildOnnxModel, type WeightQuant } from "../src/index.js";

const [modelDir, outDir, quant] = process.argv.slice(2) as [string, string, WeightQuant];
const t = performance.now();
const { onnxPath } = await buildOnnxModel({ modelDir, outDir, weightQuant: quant });
const buildS = (performance.now() - t) / 1000;
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
console.log(
  JSON.stringify({
    buildS,
    dataBytes: statSync(`${onnxPath}.data`).size,
    peakRssMb: hwm ? Number(hwm[1]) / 1024 : null,
  }),
);

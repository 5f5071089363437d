import * as ort from "onnxruntime-node";
import { readFileSync } from "node:fs";
import { onnxProto } from "./src/onnx/protobuf-setup.ts";
import { buildOnnxModel } from "./src/index.ts";
for (const q of ["none", "int4"] as const) {
  const { onnxPath } = await buildOnnxModel({ modelDir: "test/fixtures/mistral", outDir: "/tmp/mo/opt-" + q, weightQuant: q });
  const s = await ort.InferenceSession.create(onnxPath, { graphOptimizationLevel: "all", optimizedModelFilePath: `/tmp/mo/opt-${q}.onnx`, intraOpNumThreads: 1 });
  await s.release();
  const m = onnxProto.onnx.ModelProto.decode(readFileSync(`/tmp/mo/opt-${q}.onnx`));
  const counts: Record<string, number> = {};
  for (const n of m.graph?.node ?? []) counts[`${n.domain ? n.domain + "." : ""}${n.opType}`] = (counts[`${n.domain ? n.domain + "." : ""}${n.opType}`] ?? 0) + 1;
  console.log(q, JSON.stringify(counts));
}

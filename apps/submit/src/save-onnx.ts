import { join } from "node:path";
import { exportTransformersJs, ONNX_FILE } from "@merge/mistral-onnx";
import type { PhaseTimer } from "./phases.js";

/**
 * --save-onnx DIR: the merged model's ONNX build as a folder transformers.js
 * (`@huggingface/transformers`) loads. Made from the cached build: only the small graph file is
 * rewritten, the weights are hard-linked (copied across filesystems). A routed result exports
 * the same way: its routers are part of the graph.
 */
export async function saveOnnxPhase(
  dir: string,
  buildDir: string,
  modelDir: string,
  timer: PhaseTimer,
): Promise<string> {
  const saved = await timer.run(
    "save onnx",
    () => exportTransformersJs({ onnxPath: join(buildDir, ONNX_FILE), modelDir, outDir: dir }),
    (r) => `transformers.js dtype ${r.dtype}`,
  );
  return `ONNX model for transformers.js written to ${dir} (${saved.onnxPath}; load it with dtype "${saved.dtype}", the default its config.json names)`;
}

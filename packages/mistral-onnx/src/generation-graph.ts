import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "@merge/tensor-io";
import { MistralOnnxError } from "./errors.js";
import { greedyLoopModelBytes } from "./onnx/greedy-loop.js";

/** The generation graph's file name, next to model.onnx (shares model.onnx.data). */
export const GENERATION_ONNX_FILE = "generate.onnx";

/** Where the generation graph of a model.onnx lives. */
export function generationGraphPath(onnxPath: string): string {
  return join(dirname(onnxPath), GENERATION_ONNX_FILE);
}

/**
 * Writes generate.onnx (the in-graph greedy loop, onnx/greedy-loop.ts) next to `onnxPath` from
 * that decoder's graph alone: it reads only model.onnx (nodes and initializer records, a few MB
 * at 7B) and points at the same model.onnx.data offsets, so no weight is read, folded or
 * copied. Written atomically. Works on any model.onnx this package built, so an existing build
 * can get its generation graph without a rebuild.
 */
export async function buildGenerationGraph(onnxPath: string): Promise<{ generatePath: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(onnxPath);
  } catch (e) {
    throw new MistralOnnxError(`${onnxPath}: cannot read the decoder (${(e as Error).message})`, {
      file: onnxPath,
    });
  }
  let out: Uint8Array;
  try {
    out = greedyLoopModelBytes(bytes);
  } catch (e) {
    throw new MistralOnnxError(
      `${onnxPath}: cannot build the generation graph (${(e as Error).message})`,
      {
        file: onnxPath,
      },
    );
  }
  const generatePath = generationGraphPath(onnxPath);
  await writeFileAtomic(generatePath, out);
  return { generatePath };
}

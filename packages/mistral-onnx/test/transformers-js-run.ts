import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The worker script that runs transformers.js in a process of its own (see its header). */
export const TRANSFORMERS_JS_WORKER = join(
  dirname(fileURLToPath(import.meta.url)),
  "transformers-js-worker.mjs",
);

export type TransformersJsStep =
  | { forward: number[]; past?: number }
  | { generate: number[]; maxNewTokens: number }
  | { tokenize: string };

export interface TransformersJsAnswer {
  inputNames: string[];
  results: Array<{ dims?: number[]; logits?: Float32Array; ids?: number[] }>;
}

/** Loads the exported folder `dir` with transformers.js (local files only) and runs `steps`. */
export async function runTransformersJs(
  dir: string,
  steps: TransformersJsStep[],
): Promise<TransformersJsAnswer> {
  const child = execFile(process.execPath, [TRANSFORMERS_JS_WORKER], {
    maxBuffer: 1 << 28,
    encoding: "utf8",
  });
  child.stdin?.end(JSON.stringify({ dir, steps }));
  const stdout = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (d: string) => {
      out += d;
    });
    child.stderr?.on("data", (d: string) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`transformers.js worker exited ${code}: ${err}`)),
    );
  });
  const raw = JSON.parse(stdout) as {
    inputNames: string[];
    results: Array<{ dims?: number[]; logits?: string; ids?: number[] }>;
  };
  return {
    inputNames: raw.inputNames,
    results: raw.results.map((r) => {
      if (r.logits === undefined) return r as { ids: number[] };
      const bytes = Buffer.from(r.logits, "base64");
      const logits = new Float32Array(bytes.byteLength / 4);
      new Uint8Array(logits.buffer).set(bytes);
      return { ...(r.dims ? { dims: r.dims } : {}), logits };
    }),
  };
}

import * as ort from "onnxruntime-node";
import type { MistralConfig } from "./config.js";
import { MistralOnnxError } from "./errors.js";
import { IO } from "./graph.js";
import type { KvElem, KvShape } from "./kv-cache.js";
import {
  DEFAULT_EXECUTION_PROVIDER,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
  formatChoices,
  isOneOf,
} from "./options.js";

export interface SessionOptions {
  onnxPath: string;
  executionProvider?: ExecutionProvider;
  threads?: number;
  allowSpinning?: boolean;
  onWarning?: (message: string) => void;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider actually in use (after any fallback). */
  provider: ExecutionProvider;
}

/**
 * Creates the inference session on the requested provider; a GPU provider that cannot start
 * falls back to the CPU with a warning naming the cause.
 */
export async function createSession(options: SessionOptions): Promise<OpenedSession> {
  const provider: ExecutionProvider = options.executionProvider ?? DEFAULT_EXECUTION_PROVIDER;
  if (!isOneOf(EXECUTION_PROVIDERS, provider)) {
    throw new MistralOnnxError(
      `executionProvider must be ${formatChoices(EXECUTION_PROVIDERS)}, got ${JSON.stringify(provider)}`,
    );
  }
  const base: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    ...(options.allowSpinning === false
      ? {
          extra: {
            session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } },
          },
        }
      : {}),
  };
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const open = (eps: string[]) =>
    ort.InferenceSession.create(options.onnxPath, { ...base, executionProviders: eps });
  try {
    return { session: await open(provider === "cpu" ? ["cpu"] : [provider, "cpu"]), provider };
  } catch (e) {
    if (provider === "cpu") throw cannotLoad(options.onnxPath, e);
    warn(
      `@merge/mistral-onnx: ${PROVIDER_NAMES[provider]} execution provider unavailable (${(e as Error).message.split("\n")[0]}); falling back to CPU`,
    );
    try {
      return { session: await open(["cpu"]), provider: "cpu" };
    } catch (e2) {
      throw cannotLoad(options.onnxPath, e2);
    }
  }
}

const PROVIDER_NAMES: Record<ExecutionProvider, string> = { cpu: "CPU", cuda: "CUDA" };

/** Cache layout of the session's model: element type read from the first past input. */
export function kvShapeOf(session: ort.InferenceSession, config: MistralConfig): KvShape {
  const pastMeta = session.inputMetadata.find((m) => m.name === IO.pastKey(0));
  let elem: KvElem = "float32";
  if (pastMeta?.isTensor && pastMeta.type === "float16") elem = "float16";
  return { layers: config.numLayers, kvHeads: config.numKvHeads, headDim: config.headDim, elem };
}

/** onnxruntime's load failure as a MistralOnnxError naming the model file. */
function cannotLoad(onnxPath: string, cause: unknown): MistralOnnxError {
  return new MistralOnnxError(`${onnxPath}: cannot load ONNX model (${(cause as Error).message})`, {
    file: onnxPath,
  });
}

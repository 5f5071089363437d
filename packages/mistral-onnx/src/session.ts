import { existsSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { MistralConfig } from "./config.js";
import { CUDA_PROVIDER_LIBS, onnxruntimeBindingDir } from "./cuda-providers.js";
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
  /**
   * Outputs to leave on the GPU (onnxruntime's "gpu-buffer" location) when the WebGPU provider
   * starts: the runner passes the present KV outputs, which it feeds back as the next step's past,
   * so the cache never crosses to the host. onnxruntime-node binds device outputs only for WebGPU;
   * CUDA outputs always come back to the host.
   */
  deviceOutputs?: readonly string[];
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
      { field: "executionProvider" },
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
  const open = (eps: string[], extra: ort.InferenceSession.SessionOptions = {}) =>
    ort.InferenceSession.create(options.onnxPath, { ...base, ...extra, executionProviders: eps });
  const onDevice: ort.InferenceSession.SessionOptions =
    provider === "webgpu" && options.deviceOutputs?.length
      ? {
          preferredOutputLocation: Object.fromEntries(
            options.deviceOutputs.map((n) => [n, "gpu-buffer" as const]),
          ),
        }
      : {};
  try {
    return {
      session: await open(provider === "cpu" ? ["cpu"] : [provider, "cpu"], onDevice),
      provider,
    };
  } catch (e) {
    if (provider === "cpu") throw cannotLoad(options.onnxPath, e);
    warn(
      `@merge/mistral-onnx: ${PROVIDER_NAMES[provider]} execution provider unavailable (${providerFailure(provider, e)}); falling back to CPU`,
    );
    try {
      return { session: await open(["cpu"]), provider: "cpu" };
    } catch (e2) {
      throw cannotLoad(options.onnxPath, e2);
    }
  }
}

const PROVIDER_NAMES: Record<ExecutionProvider, string> = {
  cpu: "CPU",
  cuda: "CUDA",
  webgpu: "WebGPU",
};

/**
 * Why a GPU provider did not start: onnxruntime's message, plus the library that is missing when
 * that can be found out. onnxruntime's exception for CUDA only says "Failed to load shared
 * library" (the library it could not open goes to its log on stderr), so the provider libraries
 * are looked for next to onnxruntime-node's binding and, when they are there, opened with
 * dlopen to get the loader's own message (e.g. "libcublasLt.so.12: cannot open shared object
 * file"). For WebGPU on Linux, Dawn needs the Vulkan loader, which is checked the same way.
 */
export function providerFailure(provider: ExecutionProvider, error: unknown): string {
  const first = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
  // onnxruntime prefixes its assertions with "<source file>:<line> <function> <condition> was false."
  const message = first.replace(/^.*? was false\.\s*/u, "").trim();
  let cause: string | undefined;
  try {
    if (provider === "cuda" && process.platform === "linux") cause = cudaLibraryProblem();
    else if (provider === "webgpu" && process.platform === "linux")
      cause = dlopenError("libvulkan.so.1");
  } catch {
    cause = undefined; // a diagnosis must never replace the fallback
  }
  return cause ? `${message}; ${cause}` : message;
}

/**
 * What keeps onnxruntime's CUDA provider libraries in `dir` (default: onnxruntime-node's native
 * folder) from loading on Linux: the missing provider files, else the loader's message for the
 * first one that does not open (naming its missing dependency); undefined when both open.
 */
export function cudaLibraryProblem(
  dir: string | undefined = onnxruntimeBindingDir(),
): string | undefined {
  if (!dir) return undefined;
  const missing = CUDA_PROVIDER_LIBS.filter((l) => !existsSync(join(dir, l)));
  if (missing.length > 0) {
    return `${missing.join(" and ")} not found in ${dir}: for CUDA 12 onnxruntime-node's install script downloads them, for CUDA 13 \`mistral-onnx-enable-cuda <onnxruntime-gpu wheel>\` installs them (see "Execution providers" in @merge/mistral-onnx's README)`;
  }
  for (const l of CUDA_PROVIDER_LIBS) {
    const e = dlopenError(join(dir, l));
    if (e) return e;
  }
  return undefined;
}

/**
 * The dynamic loader's error for a library, or undefined when it loads. process.dlopen reports
 * dlerror() when the library or one of its dependencies cannot be opened; a library that opens
 * but is not a Node addon fails afterwards with "Module did not self-register", which means
 * "it loads".
 */
function dlopenError(lib: string): string | undefined {
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, lib, constants.dlopen.RTLD_LAZY);
    return undefined;
  } catch (e) {
    const m = (e as Error).message;
    // Node's own error for a library that loaded but registers no addon means "it loads". An
    // undefined symbol does not count: the CUDA provider takes Provider_GetHost and friends from
    // the shared provider library, which onnxruntime loads first (alone it reads "undefined
    // symbol: Provider_GetHost", seen on the H200 with working libraries). Anything else is the
    // loader's (a missing dependency, a bad ELF file, a missing symbol version).
    if (/did not self-register|napi_register_module|undefined symbol/iu.test(m)) return undefined;
    return m.split("\n")[0];
  }
}

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

/**
 * A session opened on first use and released on demand (the runner's scoring and generation
 * sessions, which it keeps one at a time). A failed open is not kept: the next use tries again.
 */
export class LazySession {
  private opening: Promise<ort.InferenceSession> | undefined;

  constructor(
    private readonly open: () => Promise<ort.InferenceSession>,
    first?: ort.InferenceSession,
  ) {
    if (first) this.opening = Promise.resolve(first);
  }

  /** Whether it is open or opening. */
  get isOpen(): boolean {
    return this.opening !== undefined;
  }

  get(): Promise<ort.InferenceSession> {
    if (!this.opening) {
      const opening = this.open();
      opening.catch(() => {
        if (this.opening === opening) this.opening = undefined;
      });
      this.opening = opening;
    }
    return this.opening;
  }

  async release(): Promise<void> {
    const s = this.opening;
    this.opening = undefined;
    // A session that failed to open has nothing to release.
    await (await s?.catch(() => undefined))?.release();
  }
}

#!/usr/bin/env node
// mistral-onnx-enable-cuda <onnxruntime-gpu wheel | folder>: installs onnxruntime's CUDA provider
// libraries next to onnxruntime-node's binding, then says whether they load (naming a missing
// CUDA library when not). For CUDA 13 take them from PyPI's onnxruntime-gpu wheel of the same
// version as onnxruntime-node; for CUDA 12 onnxruntime-node's own install script fetches them.
import { CUDA_PROVIDER_LIBS, installCudaProviders } from "../cuda-providers.js";
import { MistralOnnxError } from "../errors.js";
import { cudaLibraryProblem } from "../session.js";

const USAGE = `usage: mistral-onnx-enable-cuda <onnxruntime-gpu .whl | folder with ${CUDA_PROVIDER_LIBS.join(", ")}> [--binding-dir DIR]

Installs onnxruntime's CUDA provider libraries where onnxruntime-node loads them. For CUDA 13:
  pip download --no-deps onnxruntime-gpu==<onnxruntime-node's version>
  mistral-onnx-enable-cuda onnxruntime_gpu-*.whl
and put CUDA 13's libcudart, libcublas, libcublasLt, libcurand, libcufft and cuDNN 9 on
LD_LIBRARY_PATH (a PyTorch cu13 install has them under site-packages/nvidia/*/lib).
For CUDA 12, onnxruntime-node's install script downloads them instead:
  ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node   (pnpm: pnpm rebuild onnxruntime-node)`;

async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes("-h") || args.includes("--help")) {
    process.stdout.write(`${USAGE}\n`);
    return args.length === 0 ? 2 : 0;
  }
  let bindingDir: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--binding-dir") bindingDir = args[++i];
    else positional.push(args[i] as string);
  }
  const from = positional[0];
  if (!from || positional.length > 1 || (args.includes("--binding-dir") && !bindingDir)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const { bindingDir: dir, installed } = await installCudaProviders({
    from,
    ...(bindingDir ? { bindingDir } : {}),
  });
  process.stdout.write(`installed ${installed.join(", ")} in ${dir}\n`);
  const problem = cudaLibraryProblem(dir);
  if (problem) {
    process.stdout.write(
      `they do not load yet: ${problem}\n(put the CUDA libraries on LD_LIBRARY_PATH; see --help)\n`,
    );
    return 1;
  }
  process.stdout.write("they load: executionProvider: cuda is ready\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(
      e instanceof MistralOnnxError ? `error: ${e.message}\n` : `${(e as Error).stack ?? e}\n`,
    );
    process.exitCode = 1;
  },
);

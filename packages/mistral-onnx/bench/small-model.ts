// The random "small" model of the CPU benches (4 layers of the 1B shape, heads of 128, vocab
// 4096), made once per temp folder by tools/fixtures/mistral-onnx/make_bench_model.py.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PYTHON = process.env.BENCH_PYTHON ?? join(ROOT, ".venv", "bin", "python");

/** The model's folder under the temp dir (`name` keeps each bench's copy apart). */
export function smallBenchModel(name: string): string {
  const dir = join(tmpdir(), name);
  if (!existsSync(join(dir, "model.safetensors"))) {
    console.error(`generating the random small model in ${dir} ...`);
    execFileSync(
      PYTHON,
      [
        join(ROOT, "tools", "fixtures", "mistral-onnx", "make_bench_model.py"),
        dir,
        ...["--size", "1b", "--layers", "4", "--vocab", "4096"],
      ],
      { stdio: "inherit" },
    );
  }
  return dir;
}

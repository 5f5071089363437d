import { createWriteStream, existsSync, readdirSync } from "node:fs";
import { copyFile, open, rename, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import yauzl from "yauzl";
import { MistralOnnxError } from "./errors.js";

/**
 * onnxruntime's CUDA provider libraries, which onnxruntime-node loads from the folder of its
 * native binding. npm's onnxruntime-node does not ship them: its install script downloads the
 * CUDA 12 build from NuGet, and PyPI's onnxruntime-gpu wheel of the same version carries the
 * CUDA 13 build (in `onnxruntime/capi/`).
 */
export const CUDA_PROVIDER_LIBS = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
] as const;

/** onnxruntime-node's native folder, bin/napi-v*\/<platform>/<arch>, or undefined. */
export function onnxruntimeBindingDir(): string | undefined {
  const root = join(dirname(createRequire(import.meta.url).resolve("onnxruntime-node")), "..");
  const bin = join(root, "bin");
  if (!existsSync(bin)) return undefined;
  for (const napi of readdirSync(bin).filter((d) => d.startsWith("napi-v"))) {
    const dir = join(bin, napi, process.platform, process.arch);
    if (existsSync(dir)) return dir;
  }
  return undefined;
}

export interface InstallCudaProvidersOptions {
  /** A folder holding both libraries, or an onnxruntime-gpu wheel (.whl) of the matching version. */
  from: string;
  /** Where to put them (default: onnxruntime-node's native folder). */
  bindingDir?: string;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/**
 * Copies CUDA_PROVIDER_LIBS into onnxruntime-node's native folder, from a folder or from a wheel
 * (read with yauzl, entry by entry: the CUDA library is ~270 MB). Each file is checked to be an
 * ELF shared object and written under a temporary name, then renamed, so an interrupted install
 * leaves no half-written library that onnxruntime would try to load.
 */
export async function installCudaProviders(
  options: InstallCudaProvidersOptions,
): Promise<{ bindingDir: string; installed: string[] }> {
  const target = options.bindingDir ?? onnxruntimeBindingDir();
  if (!target) {
    throw new MistralOnnxError(
      "cannot find onnxruntime-node's native folder (bin/napi-v*/<platform>/<arch>)",
    );
  }
  const src = options.from;
  const info = await stat(src).catch(() => undefined);
  if (!info) throw new MistralOnnxError(`${src}: no such file or folder`, { file: src });
  const temps = CUDA_PROVIDER_LIBS.map((l) => join(target, `.${l}.${process.pid}.tmp`));
  try {
    if (info.isDirectory()) {
      const missing = CUDA_PROVIDER_LIBS.filter((l) => !existsSync(join(src, l)));
      if (missing.length > 0) {
        throw new MistralOnnxError(`${src}: ${missing.join(" and ")} not found`, { file: src });
      }
      for (const [i, l] of CUDA_PROVIDER_LIBS.entries())
        await copyFile(join(src, l), temps[i] as string);
    } else {
      await extractFromWheel(src, temps);
    }
    for (const [i, l] of CUDA_PROVIDER_LIBS.entries()) await checkElf(temps[i] as string, l, src);
    for (const [i, l] of CUDA_PROVIDER_LIBS.entries())
      await rename(temps[i] as string, join(target, l));
  } finally {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
  }
  return { bindingDir: target, installed: [...CUDA_PROVIDER_LIBS] };
}

async function checkElf(file: string, lib: string, from: string): Promise<void> {
  const head = Buffer.alloc(ELF_MAGIC.length);
  const handle = await open(file, "r");
  try {
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  if (!head.equals(ELF_MAGIC)) {
    throw new MistralOnnxError(`${from}: ${lib} is not an ELF shared library`, { file: from });
  }
}

/** Streams the two libraries out of a wheel's onnxruntime/capi/ into `temps`. */
async function extractFromWheel(wheel: string, temps: string[]): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((res, rej) =>
      yauzl.open(wheel, { lazyEntries: true, strictFileNames: true }, (e, z) =>
        e ? rej(e) : res(z),
      ),
    );
  } catch (e) {
    throw new MistralOnnxError(`${wheel}: not a readable wheel (${(e as Error).message})`, {
      file: wheel,
    });
  }
  const found = new Set<string>();
  try {
    await new Promise<void>((res, rej) => {
      zip.on("error", rej);
      zip.on("end", () => res());
      zip.on("entry", (entry: yauzl.Entry) => {
        const i = CUDA_PROVIDER_LIBS.indexOf(basename(entry.fileName) as never);
        if (i < 0 || !entry.fileName.startsWith("onnxruntime/capi/")) {
          zip.readEntry();
          return;
        }
        zip.openReadStream(entry, (e, stream) => {
          if (e) return rej(e);
          pipeline(stream, createWriteStream(temps[i] as string)).then(() => {
            found.add(CUDA_PROVIDER_LIBS[i] as string);
            zip.readEntry();
          }, rej);
        });
      });
      zip.readEntry();
    });
  } catch (e) {
    throw new MistralOnnxError(`${wheel}: cannot read (${(e as Error).message})`, { file: wheel });
  } finally {
    zip.close();
  }
  const missing = CUDA_PROVIDER_LIBS.filter((l) => !found.has(l));
  if (missing.length > 0) {
    throw new MistralOnnxError(
      `${wheel}: onnxruntime/capi/${missing.join(" and onnxruntime/capi/")} not in the wheel (is it onnxruntime-gpu?)`,
      { file: wheel },
    );
  }
}

import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CUDA_PROVIDER_LIBS, installCudaProviders } from "../src/cuda-providers.js";

const run = promisify(execFile);
// Not real provider libraries: a 4-byte ELF magic plus a marker is all the installer looks at.
const elf = (tag: string) =>
  Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from(tag)]);

/** A zip written by Python's zipfile (python3 is on every machine this runs on). */
async function wheel(dir: string, entries: Record<string, Buffer>): Promise<string> {
  const path = join(dir, "onnxruntime_gpu-1.30.0-cp312-cp312-manylinux_2_27_x86_64.whl");
  const spec = JSON.stringify(
    Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, v.toString("base64")])),
  );
  await run("python3", [
    "-c",
    "import base64, json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n  for k, v in json.loads(sys.argv[2]).items(): z.writestr(k, base64.b64decode(v))",
    path,
    spec,
  ]);
  return path;
}

describe("installCudaProviders", () => {
  it("copies both libraries from a folder and from a wheel's onnxruntime/capi/, leaving no temporaries", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cuda-prov-"));
    const src = join(dir, "src");
    await mkdir(src);
    for (const l of CUDA_PROVIDER_LIBS) await writeFile(join(src, l), elf(`dir:${l}`));
    const a = join(dir, "a");
    await mkdir(a);
    await installCudaProviders({ from: src, bindingDir: a });
    for (const l of CUDA_PROVIDER_LIBS)
      expect((await readFile(join(a, l))).toString("latin1")).toContain(`dir:${l}`);

    const whl = await wheel(dir, {
      "onnxruntime/__init__.py": Buffer.from(""),
      "onnxruntime/capi/libonnxruntime_providers_cuda.so": elf("whl:cuda"),
      "onnxruntime/capi/libonnxruntime_providers_shared.so": elf("whl:shared"),
      "onnxruntime/capi/libonnxruntime_providers_tensorrt.so": elf("whl:trt"),
    });
    const b = join(dir, "b");
    await mkdir(b);
    const r = await installCudaProviders({ from: whl, bindingDir: b });
    expect(r.installed).toEqual([...CUDA_PROVIDER_LIBS]);
    expect((await readdir(b)).sort()).toEqual([...CUDA_PROVIDER_LIBS].sort());
    expect(
      (await readFile(join(b, "libonnxruntime_providers_cuda.so"))).toString("latin1"),
    ).toContain("whl:cuda");
  });

  it("refuses a wheel or folder that lacks a library, or holds something that is not ELF, and installs nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cuda-prov-bad-"));
    const target = join(dir, "t");
    await mkdir(target);
    const cpuWheel = await wheel(dir, {
      "onnxruntime/capi/libonnxruntime_providers_shared.so": elf("x"),
    });
    await expect(installCudaProviders({ from: cpuWheel, bindingDir: target })).rejects.toThrow(
      /onnxruntime\/capi\/libonnxruntime_providers_cuda\.so not in the wheel \(is it onnxruntime-gpu\?\)/,
    );
    const src = join(dir, "src");
    await mkdir(src);
    await writeFile(join(src, "libonnxruntime_providers_shared.so"), elf("x"));
    await expect(installCudaProviders({ from: src, bindingDir: target })).rejects.toThrow(
      `${src}: libonnxruntime_providers_cuda.so not found`,
    );
    await writeFile(join(src, "libonnxruntime_providers_cuda.so"), "<html>404</html>");
    await expect(installCudaProviders({ from: src, bindingDir: target })).rejects.toThrow(
      "libonnxruntime_providers_cuda.so is not an ELF shared library",
    );
    await writeFile(join(dir, "junk.whl"), "not a zip");
    await expect(
      installCudaProviders({ from: join(dir, "junk.whl"), bindingDir: target }),
    ).rejects.toThrow(/junk\.whl: not a readable wheel/);
    await expect(
      installCudaProviders({ from: join(dir, "nope"), bindingDir: target }),
    ).rejects.toThrow("no such file or folder");
    expect(await readdir(target)).toEqual([]);
  });

  it("the command installs, then reports that fake libraries do not load, naming the loader's error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cuda-prov-cli-"));
    const src = join(dir, "src");
    await mkdir(src);
    for (const l of CUDA_PROVIDER_LIBS) await writeFile(join(src, l), elf(l));
    const target = join(dir, "t");
    await mkdir(target);
    const r = await run(
      process.execPath,
      [
        "--conditions=source",
        "--import",
        "tsx",
        "src/bin/enable-cuda.ts",
        src,
        "--binding-dir",
        target,
      ],
      { cwd: join(import.meta.dirname, "..") },
    ).catch((e: { code: number; stdout: string }) => e);
    expect((r as { code?: number }).code).toBe(1);
    expect(r.stdout).toContain(`installed ${CUDA_PROVIDER_LIBS.join(", ")} in ${target}`);
    expect(r.stdout).toMatch(/they do not load yet: .*libonnxruntime_providers_shared\.so/);
    const usage = await run(
      process.execPath,
      ["--conditions=source", "--import", "tsx", "src/bin/enable-cuda.ts"],
      {
        cwd: join(import.meta.dirname, ".."),
      },
    ).catch((e: { code: number; stdout: string }) => e);
    expect((usage as { code?: number }).code).toBe(2);
    expect(usage.stdout).toContain("pip download --no-deps onnxruntime-gpu");
  });
});

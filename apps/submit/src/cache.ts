import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ONNX_FILE } from "@merge/mistral-onnx";
import { writeFileAtomic } from "@merge/tensor-io";
import { SubmitError } from "./errors.js";

/** Stable JSON: object keys sorted, so equal settings hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** A short hex key of everything that decides the built model's bytes. */
export function cacheKey(parts: unknown): string {
  return createHash("sha256").update(canonicalJson(parts)).digest("hex").slice(0, 20);
}

const DONE_MARKER = "build-complete.json";

/** A finished build in `dir` (the marker is written last, after the rename). */
export function isCachedBuild(dir: string): boolean {
  return existsSync(join(dir, DONE_MARKER)) && existsSync(join(dir, ONNX_FILE));
}

/** The folder of the build with this key: `<cache root>/onnx-<key>`. */
export function buildDirFor(cacheRoot: string, key: string): string {
  return join(cacheRoot, `onnx-${key}`);
}

/** The temporary sibling folder a build of `dir` is written in: `<dir>.tmp-<pid>`. */
export function buildTempDir(dir: string, pid = process.pid): string {
  return `${dir}.tmp-${pid}`;
}

/** The builder's pid when `name` is a build's temporary folder (buildTempDir), else undefined. */
export function buildTempPid(name: string): number | undefined {
  const m = /^onnx-[0-9a-f]+\.tmp-(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Builds into a temporary sibling folder and renames it into place when done, so a killed
 * build never leaves a folder that looks finished.
 */
export async function buildIntoCache(
  dir: string,
  key: unknown,
  build: (tmpDir: string) => Promise<void>,
): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  const tmp = buildTempDir(dir);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    // fsynced, so a crash right after the rename cannot leave a marker without its content.
    await writeFileAtomic(join(tmp, DONE_MARKER), `${JSON.stringify(key, null, 2)}\n`);
    await publish(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Renames a finished build into place. Another run with the same key may have published first
 * (two CLIs on one cache): its build is complete and has the same bytes, and it may be in use,
 * so it is kept and ours is discarded. Only a folder without the marker (left by an older
 * version or a manual copy) is ever removed. A published folder always has its marker, since
 * the marker is written before the rename.
 */
async function publish(tmp: string, dir: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await rename(tmp, dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      if (isCachedBuild(dir)) {
        await rm(tmp, { recursive: true, force: true });
        return;
      }
      await rm(dir, { recursive: true, force: true });
    }
  }
  throw new SubmitError(
    `could not publish the ONNX build ${tmp} as ${dir}: the folder keeps reappearing`,
    1,
    { where: { file: dir } },
  );
}

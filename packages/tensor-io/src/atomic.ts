/**
 * Atomic file output: write to a temporary file in the destination folder, fsync, then rename
 * over the destination. A crash or error never leaves a half-written file under the real name.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** What writeFileAtomic puts in the file: bytes, UTF-8 text, or a callback writing to the temp handle. */
export type AtomicFileContent = Uint8Array | string | ((handle: FileHandle) => Promise<void>);

/**
 * Writes `content` to a temp file next to `path`, fsyncs it, then renames it over `path`
 * (creating the folder if needed). On any error the temp file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, content: AtomicFileContent): Promise<void> {
  const write =
    typeof content === "function"
      ? content
      : async (handle: FileHandle) => {
          await handle.writeFile(content, typeof content === "string" ? "utf8" : undefined);
        };
  const folder = dirname(path);
  await mkdir(folder, { recursive: true });
  // Hidden temp name in the same folder so the rename stays on one filesystem.
  const temp = join(folder, atomicTempName(basename(path)));
  const handle = await open(temp, "wx");
  try {
    await write(handle);
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
}

/** writeFileAtomic for UTF-8 text. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text);
}

/**
 * The temporary name an atomic write of `name` uses: `.<name>.<pid>.<hex>.tmp`, hidden, beside
 * the target, with the writer's pid so a later run can tell a killed writer's leftovers
 * (atomicTempPid). @merge/eval's CSV writer uses the same form.
 */
export function atomicTempName(name: string, pid = process.pid): string {
  return `.${name}.${pid}.${randomBytes(6).toString("hex")}.tmp`;
}

/** The writer's pid when `name` is an atomic write's temporary (atomicTempName), else undefined. */
export function atomicTempPid(name: string): number | undefined {
  const m = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

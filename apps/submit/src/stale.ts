import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * Temporary names written by this toolkit, with the writer's pid: atomic files
 * (`.<name>.<pid>.<hex>.tmp`, tensor-io and eval) and cache builds (`onnx-<key>.tmp-<pid>`).
 */
const TEMP_NAMES = [/^\..+\.(\d+)\.[0-9a-f]+\.tmp$/, /^onnx-[0-9a-f]+\.tmp-(\d+)$/];

/** False only when no process has that pid (ESRCH); a live or foreign (EPERM) pid counts as alive. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Removes temporaries that killed runs left in `dirs` (a run killed with -9 never reaches its
 * cleanup). Only names of the patterns above whose writer is gone are touched, so a run in
 * progress beside this one keeps its files. Returns the removed paths.
 */
export async function sweepStaleTemps(dirs: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of new Set(dirs)) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue; // not there yet: nothing to sweep
    }
    for (const name of names) {
      for (const pattern of TEMP_NAMES) {
        const pid = Number(pattern.exec(name)?.[1]);
        if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
        await rm(join(dir, name), { recursive: true, force: true });
        removed.push(join(dir, name));
      }
    }
  }
  return removed;
}

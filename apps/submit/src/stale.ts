import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { atomicTempPid } from "@merge/tensor-io";
import { buildTempPid } from "./cache.js";

/**
 * The writer's pid of a temporary this toolkit writes: an atomic file (tensor-io's
 * atomicTempName, also eval's form) or a cache build folder (buildTempDir).
 */
const tempPid = (name: string) => atomicTempPid(name) ?? buildTempPid(name);

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
 * cleanup). Only such temporaries whose writer is gone are touched, so a run in
 * progress beside this one keeps its files. Returns the removed paths.
 */
export async function sweepStaleTemps(
  dirs: readonly string[],
  /** Only names it accepts are considered (default: all). */
  match: (name: string) => boolean = () => true,
): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of new Set(dirs)) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue; // not there yet: nothing to sweep
    }
    for (const name of names) {
      if (!match(name)) continue;
      const pid = tempPid(name);
      if (pid === undefined || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
      await rm(join(dir, name), { recursive: true, force: true });
      removed.push(join(dir, name));
    }
  }
  return removed;
}

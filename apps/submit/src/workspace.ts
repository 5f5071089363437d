import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The workspace root: the nearest folder above `start` holding pnpm-workspace.yaml. `pnpm
 * --filter submit start` runs in apps/submit, so user paths are resolved against this root.
 */
export function findWorkspaceRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(start);
    dir = parent;
  }
}

/** An absolute path: as given when absolute, else relative to `root`. */
export function resolveFrom(root: string, path: string): string {
  return isAbsolute(path) ? path : resolve(root, path);
}

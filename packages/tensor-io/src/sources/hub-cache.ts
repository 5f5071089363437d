/**
 * The Hugging Face Hub cache layout shared with Python's huggingface_hub:
 *   <cache>/models--owner--name/refs/<revision>             → commit hash
 *   <cache>/models--owner--name/snapshots/<commit>/<file>   → symlink to ../../blobs/<etag>
 * so a cache filled by either side serves both.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { getHFHubCachePath, getRepoFolderName } from "@huggingface/hub";

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function defaultCacheDir(): string {
  return getHFHubCachePath();
}

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, getRepoFolderName({ type: "model", name: repo }));
}

export function snapshotFolder(cacheDir: string, repo: string, commit: string): string {
  return join(repoFolder(cacheDir, repo), "snapshots", commit);
}

export function refPath(cacheDir: string, repo: string, revision: string): string {
  return join(repoFolder(cacheDir, repo), "refs", revision);
}

/** The commit a revision points to in the cache, or undefined if unknown there. */
export async function cachedCommit(
  cacheDir: string,
  repo: string,
  revision: string,
): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    const commit = (await readFile(refPath(cacheDir, repo, revision), "utf8")).trim();
    return COMMIT_HASH.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** True if `path` resolves (through its symlink) to a regular file: a dangling link is missing. */
export async function isCachedFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Files of a snapshot folder, as POSIX paths relative to it. */
export async function listSnapshotFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(entry.parentPath, entry.name);
    if (await isCachedFile(full)) files.push(relative(folder, full).split(sep).join("/"));
  }
  return files.sort();
}

/**
 * The Hugging Face Hub cache layout shared with Python's huggingface_hub:
 *   <cache>/models--owner--name/refs/<revision>             → commit hash
 *   <cache>/models--owner--name/snapshots/<commit>/<file>   → symlink to ../../blobs/<etag>
 * so a cache filled by either side serves both.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { getHFHubCachePath, getRepoFolderName } from "@huggingface/hub";
import { SourceError } from "../errors.js";

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

/** True if `path` is `dir` itself or lies below it (lexically, after normalisation). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/**
 * <repo folder>/refs/<revision>. Revisions are vetted when a spec is parsed (revisionProblem);
 * this re-checks that the path stays inside refs/, whoever the caller.
 */
export function refPath(cacheDir: string, repo: string, revision: string): string {
  const refs = join(repoFolder(cacheDir, repo), "refs");
  const path = join(refs, revision);
  if (revision === "" || !isInside(refs, path) || path === refs) {
    throw new SourceError(
      `revision ${JSON.stringify(revision)} would name a path outside the cache's refs/ folder`,
      refs,
    );
  }
  return path;
}

/** The commit a revision points to in the cache, or undefined if unknown there. */
export async function cachedCommit(
  cacheDir: string,
  repo: string,
  revision: string,
): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  const ref = refPath(cacheDir, repo, revision);
  try {
    const commit = (await readFile(ref, "utf8")).trim();
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

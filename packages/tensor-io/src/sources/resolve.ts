/**
 * resolveSource: turns "./folder" or "owner/name@revision" into a local folder. Hub repos are
 * fetched with @huggingface/hub into the Python-compatible cache (see hub-cache.ts); with
 * HF_HUB_OFFLINE=1 only the cache is used. The token is passed to the library and never put
 * into a message.
 */
import { isAbsolute, join } from "node:path";
import { downloadFileToCacheDir, type ListFileEntry, listFiles, modelInfo } from "@huggingface/hub";
import { writeTextAtomic } from "../atomic.js";
import { SourceError } from "../errors.js";
import {
  COMMIT_HASH,
  cachedCommit,
  defaultCacheDir,
  isCachedFile,
  isInside,
  listSnapshotFiles,
  refPath,
  repoFolder,
  snapshotFolder,
} from "./hub-cache.js";
import { fileMatcher, isGlob } from "./patterns.js";
import { redactedCause, redactSecrets } from "./redact.js";
import { type ProgressEvent, withProgress } from "./progress.js";
import { parseSourceSpec } from "./spec.js";

export interface ResolvedSource {
  dir: string;
  kind: "local" | "hub";
  repo?: string;
  revision?: string;
  commit?: string;
}

export interface ResolveSourceOptions {
  /** Which files to fetch (names or globs); default: all files of the repo. */
  files?: string[];
  /** Default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: HF_HUB_OFFLINE is "1"/"true"/"yes"/"on". */
  offline?: boolean;
  /** Default: HF_TOKEN. Never printed. */
  token?: string;
  onProgress?: (e: ProgressEvent) => void;
  /** Hub endpoint (default HF_ENDPOINT, else https://huggingface.co). */
  hubUrl?: string;
  /** Custom fetch (proxies, tests). */
  fetch?: typeof fetch;
}

function envFlag(name: string): boolean {
  return ["1", "true", "yes", "on"].includes((process.env[name] ?? "").toLowerCase());
}

export async function resolveSource(
  spec: string,
  options: ResolveSourceOptions = {},
): Promise<ResolvedSource> {
  const parsed = await parseSourceSpec(spec);
  if (parsed.kind === "local") return resolveLocal(parsed.path, options.files);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const offline = options.offline ?? envFlag("HF_HUB_OFFLINE");
  const hub = { repo: parsed.repo, revision: parsed.revision, cacheDir };
  return offline ? resolveOffline(hub, options.files) : resolveOnline(hub, options);
}

async function resolveLocal(dir: string, files: string[] | undefined): Promise<ResolvedSource> {
  let present: string[];
  try {
    present = await listSnapshotFiles(dir);
  } catch (cause) {
    throw new SourceError("local source folder does not exist or cannot be read", dir, undefined, {
      cause,
    });
  }
  checkRequested(
    files,
    present,
    (file) => new SourceError(`required file ${JSON.stringify(file)} is missing`, join(dir, file)),
  );
  return { dir, kind: "local" };
}

/** Every literal name must be present and every glob must match something. */
function checkRequested(
  files: string[] | undefined,
  present: string[],
  missing: (pattern: string) => SourceError,
): void {
  for (const pattern of files ?? []) {
    const match = fileMatcher([pattern]);
    if (!present.some(match)) throw missing(pattern);
  }
}

interface HubTarget {
  repo: string;
  revision: string;
  cacheDir: string;
}

async function resolveOffline(
  { repo, revision, cacheDir }: HubTarget,
  files: string[] | undefined,
): Promise<ResolvedSource> {
  const at = `${repo}@${revision}`;
  const commit = await cachedCommit(cacheDir, repo, revision);
  if (commit === undefined) {
    throw new SourceError(
      `HF_HUB_OFFLINE=1 and ${at} is not in the Hub cache (no ${join("refs", revision)}); ` +
        "download it once online, or name a cached commit hash as the revision",
      repoFolder(cacheDir, repo),
    );
  }
  const dir = snapshotFolder(cacheDir, repo, commit);
  let present: string[];
  try {
    present = await listSnapshotFiles(dir);
  } catch (cause) {
    throw new SourceError(
      `HF_HUB_OFFLINE=1 and ${at} (commit ${commit}) has no cached snapshot`,
      dir,
      undefined,
      { cause },
    );
  }
  checkRequested(
    files,
    present,
    (file) =>
      new SourceError(
        `HF_HUB_OFFLINE=1 and ${isGlob(file) ? "no cached file matches" : "the cache lacks"} ${JSON.stringify(file)} of ${at} (commit ${commit})`,
        join(dir, file),
      ),
  );
  return { dir, kind: "hub", repo, revision, commit };
}

async function hubCall<T>(
  what: string,
  target: HubTarget,
  token: string | undefined,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    // A Hub or proxy error body can echo the Authorization header and the library copies the
    // body into its error: redact the message, and keep a redacted copy as the cause.
    const secrets = [token];
    throw new SourceError(
      redactSecrets(
        `${what} failed for ${target.repo}@${target.revision}: ${(cause as Error).message}`,
        secrets,
      ),
      repoFolder(target.cacheDir, target.repo),
      undefined,
      { cause: redactedCause(cause, secrets) },
    );
  }
}

async function resolveOnline(
  target: HubTarget,
  options: ResolveSourceOptions,
): Promise<ResolvedSource> {
  const { repo, revision, cacheDir } = target;
  const token = options.token ?? process.env.HF_TOKEN;
  const credentials = {
    ...(token ? { accessToken: token } : {}),
    ...((options.hubUrl ?? process.env.HF_ENDPOINT)
      ? { hubUrl: options.hubUrl ?? process.env.HF_ENDPOINT }
      : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };

  let commit = revision;
  if (!COMMIT_HASH.test(revision)) {
    const info = await hubCall("looking up the revision", target, token, () =>
      modelInfo({ name: repo, revision, additionalFields: ["sha"], ...credentials }),
    );
    commit = (info as { sha?: string }).sha ?? "";
    if (!COMMIT_HASH.test(commit)) {
      throw new SourceError(
        `the Hub returned no commit hash for ${repo}@${revision}`,
        repoFolder(cacheDir, repo),
      );
    }
    // Record the ref like huggingface_hub does, so offline runs find this revision.
    const ref = refPath(cacheDir, repo, revision);
    try {
      // Atomic, so a concurrent or interrupted run never reads a truncated commit hash.
      await writeTextAtomic(ref, commit);
    } catch (cause) {
      throw new SourceError(
        `cannot record revision ${JSON.stringify(revision)} in the Hub cache`,
        ref,
        undefined,
        { cause },
      );
    }
  }

  const entries: ListFileEntry[] = [];
  await hubCall("listing files", target, token, async () => {
    for await (const entry of listFiles({
      repo,
      revision: commit,
      recursive: true,
      ...credentials,
    })) {
      if (entry.type === "file") entries.push(entry);
    }
  });
  const wanted = fileMatcher(options.files);
  checkRequested(
    options.files,
    entries.map((e) => e.path),
    (file) =>
      new SourceError(
        `${JSON.stringify(file)} is not in ${repo}@${revision} (commit ${commit})`,
        repoFolder(cacheDir, repo),
      ),
  );

  const dir = snapshotFolder(cacheDir, repo, commit);
  for (const entry of entries) {
    // The listing comes from the network: a path must stay inside the snapshot folder.
    if (entry.path === "" || !isInside(dir, join(dir, entry.path)) || isAbsolute(entry.path)) {
      throw new SourceError(
        `the Hub listed a file path ${JSON.stringify(entry.path)} that leaves the snapshot folder`,
        dir,
      );
    }
  }
  for (const entry of entries.filter((e) => wanted(e.path))) {
    if (await isCachedFile(join(dir, entry.path))) {
      options.onProgress?.({ file: entry.path, loaded: entry.size, total: entry.size });
      continue;
    }
    const etag = entry.lfs?.oid ?? entry.xetHash ?? entry.oid;
    const partial =
      etag === undefined
        ? undefined
        : join(repoFolder(cacheDir, repo), "blobs", `${etag}.incomplete`);
    await withProgress(entry.path, entry.size, partial, options.onProgress, () =>
      hubCall(`downloading ${entry.path}`, target, token, () =>
        downloadFileToCacheDir({
          repo,
          path: entry.path,
          revision: commit,
          cacheDir,
          ...credentials,
        }),
      ),
    );
  }
  return { dir, kind: "hub", repo, revision, commit };
}

/**
 * resolveSource: turns "./folder" or "owner/name@revision" into a local folder. Hub repos are
 * fetched with @huggingface/hub into the Python-compatible cache (see hub-cache.ts); with
 * HF_HUB_OFFLINE=1 only the cache is used, and when the Hub cannot be reached the cached
 * snapshot stands in, with a warning (as in huggingface_hub). The token (hub-auth.ts) is passed
 * to the library and never put into a message.
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
import { findHubToken, type HubToken } from "./hub-auth.js";
import { authHint, networkFailure } from "./hub-errors.js";
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
  /**
   * Default: HF_TOKEN, else the file `hf auth login` writes (HF_TOKEN_PATH, else $HF_HOME/token).
   * `false`: send no token. Never printed.
   */
  token?: string | false;
  onProgress?: (e: ProgressEvent) => void;
  /**
   * Warnings, one line each (default: console.warn): the Hub could not be reached and the cache
   * was used, or the token file could not be read.
   */
  onWarning?: (message: string) => void;
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
  if (offline) return resolveCached(hub, options.files, { offline: true });
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  try {
    return await resolveOnline(hub, options, warn);
  } catch (error) {
    if (!(error instanceof HubUnreachable)) throw error;
    // No answer from the Hub (DNS, refused, timeout...): use the cache, like huggingface_hub.
    const cached = await resolveCached(hub, options.files, { unreachable: error });
    warn(
      `warning: the Hub could not be reached for ${hub.repo}@${hub.revision} (${error.reason}); ` +
        `using the cached snapshot ${cached.dir} (commit ${cached.commit}). ` +
        "Set HF_HUB_OFFLINE=1 to skip the network.",
    );
    return cached;
  }
}

/** Raised by hubCall when a request got no answer; resolveSource then falls back to the cache. */
class HubUnreachable extends Error {
  /** Why, already redacted ("getaddrinfo ENOTFOUND huggingface.co"). */
  readonly reason: string;
  constructor(reason: string, options: { cause: unknown }) {
    super(`the Hub could not be reached (${reason})`, options);
    this.name = "HubUnreachable";
    this.reason = reason;
  }
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

/** Why only the cache is used: HF_HUB_OFFLINE, or the Hub gave no answer. */
type CacheOnly = { offline: true } | { unreachable: HubUnreachable };

async function resolveCached(
  { repo, revision, cacheDir }: HubTarget,
  files: string[] | undefined,
  why: CacheOnly,
): Promise<ResolvedSource> {
  const at = `${repo}@${revision}`;
  const unreachable = "unreachable" in why ? why.unreachable : undefined;
  // Offline messages start "HF_HUB_OFFLINE=1 and ..."; fallback ones say the Hub was not reached.
  const lead =
    unreachable === undefined
      ? "HF_HUB_OFFLINE=1 and"
      : `the Hub could not be reached for ${at} (${unreachable.reason}) and`;
  const cause = unreachable === undefined ? {} : { cause: unreachable };
  const commit = await cachedCommit(cacheDir, repo, revision);
  if (commit === undefined) {
    throw new SourceError(
      unreachable === undefined
        ? `${lead} ${at} is not in the Hub cache (no ${join("refs", revision)}); ` +
            "download it once online, or name a cached commit hash as the revision"
        : `${lead} the Hub cache has no copy of that revision (no ${join("refs", revision)}); ` +
            "check the network or proxy and run again, or name a cached commit hash as the revision",
      repoFolder(cacheDir, repo),
      undefined,
      cause,
    );
  }
  const dir = snapshotFolder(cacheDir, repo, commit);
  let present: string[];
  try {
    present = await listSnapshotFiles(dir);
  } catch (error) {
    throw new SourceError(
      unreachable === undefined
        ? `${lead} ${at} (commit ${commit}) has no cached snapshot`
        : `${lead} the Hub cache has no copy of that revision (no snapshot of commit ${commit}); ` +
            "check the network or proxy and run again",
      dir,
      undefined,
      { cause: unreachable ?? error },
    );
  }
  checkRequested(
    files,
    present,
    (file) =>
      new SourceError(
        `${lead} ${isGlob(file) ? "no cached file matches" : "the cache lacks"} ${JSON.stringify(file)} of ${at} (commit ${commit})`,
        join(dir, file),
        undefined,
        cause,
      ),
  );
  return { dir, kind: "hub", repo, revision, commit };
}

interface HubSession {
  target: HubTarget;
  token: HubToken | undefined;
  hubUrl: string | undefined;
}

async function hubCall<T>(what: string, session: HubSession, call: () => Promise<T>): Promise<T> {
  const { target, token } = session;
  try {
    return await call();
  } catch (cause) {
    // A Hub or proxy error body can echo the Authorization header and the library copies the
    // body into its error: redact the message, and keep a redacted copy as the cause.
    const secrets = [token?.value];
    const unreachable = networkFailure(cause);
    if (unreachable !== undefined) {
      throw new HubUnreachable(redactSecrets(unreachable, secrets), {
        cause: redactedCause(cause, secrets),
      });
    }
    const hint = authHint(cause, target.repo, session.hubUrl, token);
    throw new SourceError(
      redactSecrets(
        hint === undefined
          ? `${what} failed for ${target.repo}@${target.revision}: ${(cause as Error).message}`
          : `${what} failed for ${target.repo}@${target.revision}: ${(cause as Error).message.replace(/[.\s]+$/, "")}. ${hint}`,
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
  warn: (message: string) => void,
): Promise<ResolvedSource> {
  const { repo, revision, cacheDir } = target;
  const token = await findHubToken(options.token, warn);
  const hubUrl = options.hubUrl || process.env.HF_ENDPOINT || undefined;
  const session: HubSession = { target, token, hubUrl };
  const credentials = {
    ...(token ? { accessToken: token.value } : {}),
    ...(hubUrl ? { hubUrl } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };

  let commit = revision;
  if (!COMMIT_HASH.test(revision)) {
    const info = await hubCall("looking up the revision", session, () =>
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
  await hubCall("listing files", session, async () => {
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
      hubCall(`downloading ${entry.path}`, session, () =>
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

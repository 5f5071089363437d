/**
 * Source specs: a local folder ("./path", "/abs/path", or any existing folder) or a Hugging Face
 * Hub model repo "owner/name@revision" (revision optional, default "main"). As in transformers'
 * from_pretrained, an existing local folder wins over a Hub name that looks the same.
 */
import { stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { SourceError } from "../errors.js";

export type SourceSpec =
  | { kind: "local"; path: string }
  | { kind: "hub"; repo: string; revision: string };

/** The Hub's repo-name rules, loosely: owner and name of letters, digits, "-", "_", ".". */
const HUB_SPEC = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([^\s@]+))?$/;

/**
 * A Hub revision: a commit hash, or a branch/tag/ref name under git's check-ref-format rules
 * (so "refs/pr/1" is fine). The revision becomes a path under the cache's refs/ folder, so
 * anything that could name another place ("..", a leading "/", "\\") is refused here.
 */
export function revisionProblem(revision: string): string | undefined {
  if (/^[0-9a-f]{40}$/.test(revision)) return undefined;
  if (revision === "" || revision === "@") return 'it is empty or "@"';
  // Control characters, space, DEL, and git's forbidden ~ ^ : ? * [ \
  const hasControl = [...revision].some((c) => c.charCodeAt(0) <= 0x20 || c === "\u007f");
  if (hasControl || /[~^:?*[\\]/.test(revision)) {
    return "it contains a control character, a space or one of ~ ^ : ? * [ \\";
  }
  if (revision.includes("..")) return 'it contains ".."';
  if (revision.includes("@{")) return 'it contains "@{"';
  if (revision.startsWith("-")) return 'it starts with "-"';
  if (revision.startsWith("/") || revision.endsWith("/") || revision.includes("//")) {
    return 'it starts or ends with "/" or has an empty component';
  }
  if (revision.endsWith(".")) return 'it ends with "."';
  for (const part of revision.split("/")) {
    if (part.startsWith(".")) return `its component ${JSON.stringify(part)} starts with "."`;
    if (part.endsWith(".lock")) return `its component ${JSON.stringify(part)} ends with ".lock"`;
  }
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Classifies a spec. Relative local paths resolve against `options.baseDir` (default: the
 * current directory), so a CLI can resolve config paths against its project root.
 */
export async function parseSourceSpec(
  spec: string,
  options: { baseDir?: string } = {},
): Promise<SourceSpec> {
  const path = resolve(options.baseDir ?? ".", spec);
  const explicitPath =
    isAbsolute(spec) || spec === "." || spec === ".." || /^\.\.?[\\/]/.test(spec);
  if (explicitPath || (await isDirectory(path))) return { kind: "local", path };
  const m = HUB_SPEC.exec(spec);
  if (m === null) {
    throw new SourceError(
      'not an existing folder, nor a Hub repo spec "owner/name" or "owner/name@revision"',
      spec,
    );
  }
  const revision = m[3] ?? "main";
  const problem = revisionProblem(revision);
  if (problem !== undefined) {
    throw new SourceError(
      `${JSON.stringify(revision)} is not a valid revision: ${problem} (expected a commit hash or a branch, tag or ref name such as "main", "v1.0" or "refs/pr/1")`,
      spec,
    );
  }
  return { kind: "hub", repo: `${m[1]}/${m[2]}`, revision };
}

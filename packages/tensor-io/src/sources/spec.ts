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
  return { kind: "hub", repo: `${m[1]}/${m[2]}`, revision: m[3] ?? "main" };
}

import { existsSync, readdirSync, statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { parseSourceSpec, resolveSource, type SourceSpec } from "@merge/tensor-io";
import { SubmitError } from "./errors.js";
import { resolveFrom } from "./workspace.js";

/** A model or adapter folder on disk, with where it came from. */
export interface ModelSource {
  /** As written in the config. */
  spec: string;
  /** Short name for messages and reports (folder name or Hub repo). */
  label: string;
  dir: string;
  kind: "local" | "hub";
  /** Hub commit, when known. */
  commit?: string;
  /** Identity for the build cache: the Hub commit, or local files' names, sizes and mtimes. */
  fingerprint: string;
}

/**
 * Base files fetched from the Hub. Every entry must match at least one file, so the weights are
 * one glob covering both layouts: a single `model.safetensors`, or `model.safetensors.index.json`
 * with its `model-0000k-of-0000n.safetensors` shards. Other weight copies in the repo
 * (consolidated.safetensors, pytorch_model.bin) are not downloaded; SafetensorsCheckpoint.open
 * then says clearly if the snapshot holds neither layout (or both).
 */
export const BASE_FILES = [
  "config.json",
  "model*.safetensors{,.index.json}",
  "tokenizer.json",
  "tokenizer_config.json",
];
export const ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"];

/**
 * A hint for a path that does not resolve: the closest existing sibling names ("did you mean"),
 * and the embedded zoo's restore hint only when the zoo itself is incomplete (a typo in a
 * data/zoo path is a typo, not a missing zoo).
 */
function pathHint(root: string, spec: string): string {
  const hints: string[] = [];
  const bare = spec.replace(/[\\/]\*$/, "");
  const path = resolveFrom(root, bare);
  const parent = dirname(path);
  if (existsSync(parent) && statSync(parent).isDirectory()) {
    const want = basename(path).toLowerCase();
    const close = readdirSync(parent)
      .filter((n) => statSync(join(parent, n)).isDirectory())
      .map((n) => ({ n, d: editDistance(want, n.toLowerCase()) }))
      .filter(({ n, d }) => d <= Math.max(2, Math.floor(n.length / 3)))
      .sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : 1))
      .slice(0, 3)
      .map(({ n }) => n);
    if (close.length > 0)
      hints.push(
        ` Did you mean ${close.map((n) => JSON.stringify(join(dirname(bare), n))).join(" or ")}?`,
      );
  }
  const zoo = resolveFrom(root, "data/zoo");
  const zooIncomplete =
    !existsSync(join(zoo, "base", "config.json")) || !existsSync(join(zoo, "experts"));
  if (spec.replace(/\\/g, "/").startsWith("data/zoo") && zooIncomplete) {
    hints.push(
      " The embedded default model (data/zoo) is missing or incomplete: restore it from the repository (git checkout / git lfs pull), or pass --config configs/mistral-7b.yaml or a config of your own.",
    );
  }
  return hints.join("");
}

/** Levenshtein distance (short folder names only). */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

async function localFingerprint(dir: string): Promise<string> {
  const names = (await readdir(dir)).sort();
  const parts: string[] = [];
  for (const name of names) {
    const s = await stat(join(dir, name));
    if (s.isFile()) parts.push(`${name}:${s.size}:${Math.round(s.mtimeMs)}`);
  }
  return parts.join("|");
}

/**
 * Expands expert specs: a local entry ending in `/*` becomes every sub-folder holding an
 * adapter_config.json, sorted by name (a stable expert order keeps runs deterministic).
 */
export async function expandExpertSpecs(root: string, specs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const spec of specs) {
    if (!/[\\/]\*$/.test(spec)) {
      out.push(spec);
      continue;
    }
    const parentSpec = spec.slice(0, -2);
    const parent = resolveFrom(root, parentSpec);
    if (!existsSync(parent) || !statSync(parent).isDirectory()) {
      throw new SubmitError(
        `experts "${spec}": folder ${parent} does not exist.${pathHint(root, spec)}`,
        1,
        { where: { file: parent, field: "experts" } },
      );
    }
    const names = (await readdir(parent)).sort();
    const found = names.filter((n) => existsSync(join(parent, n, "adapter_config.json")));
    if (found.length === 0) {
      throw new SubmitError(
        `experts "${spec}": no adapter folders (with adapter_config.json) in ${parent}.${pathHint(root, spec)}`,
        1,
        { where: { file: parent, field: "experts" } },
      );
    }
    for (const n of found) out.push(`${parentSpec}/${n}`);
  }
  return out;
}

/**
 * Finds a base model or adapter: a local folder (relative to the workspace root) or a Hub
 * `owner/name@revision` fetched into the Hub cache through @merge/tensor-io. `onWarning` gets the
 * Hub warnings (the Hub could not be reached and the cache was used; an unreadable token file).
 */
export async function resolveModelSource(
  root: string,
  spec: string,
  role: "base" | "expert",
  hub: { offline?: boolean; cacheDir?: string },
  onWarning: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
): Promise<ModelSource> {
  const required = role === "base" ? ["config.json"] : ADAPTER_FILES;
  let parsed: SourceSpec;
  try {
    parsed = await parseSourceSpec(spec, { baseDir: root });
  } catch (err) {
    throw new SubmitError(
      `${role} "${spec}": neither an existing folder (relative to ${root}) nor a Hub "owner/name@revision".${pathHint(root, spec)}`,
      1,
      { cause: err, where: { field: role === "base" ? "base" : "experts" } },
    );
  }
  if (parsed.kind === "local") {
    const dir = parsed.path;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new SubmitError(
        `${role} "${spec}": folder ${dir} does not exist.${pathHint(root, spec)}`,
        1,
        { where: { file: dir } },
      );
    }
    // A pickled adapter (adapter_model.bin) passes here: PeftAdapter.open refuses it with the
    // one-line conversion to safetensors, which says more than "missing".
    const missing = required.filter(
      (f) =>
        !existsSync(join(dir, f)) &&
        !(f === "adapter_model.safetensors" && existsSync(join(dir, "adapter_model.bin"))),
    );
    if (missing.length > 0) {
      throw new SubmitError(
        `${role} "${spec}": ${dir} lacks ${missing.join(", ")}${role === "base" ? " (expected a Hugging Face model folder)" : " (expected a PEFT LoRA adapter folder)"}.${pathHint(root, spec)}`,
        1,
        { where: { file: dir } },
      );
    }
    const label = relative(root, dir).startsWith("..") ? dir : relative(root, dir);
    return { spec, label, dir, kind: "local", fingerprint: await localFingerprint(dir) };
  }
  let resolved: Awaited<ReturnType<typeof resolveSource>>;
  try {
    resolved = await resolveSource(spec, {
      files: role === "base" ? BASE_FILES : ADAPTER_FILES,
      onWarning: (m) => onWarning(`warning: ${role} "${spec}": ${m.replace(/^warning:\s*/, "")}`),
      ...(hub.offline !== undefined ? { offline: hub.offline } : {}),
      ...(hub.cacheDir !== undefined ? { cacheDir: resolveFrom(root, hub.cacheDir) } : {}),
    });
  } catch (err) {
    throw new SubmitError(
      `${role} "${spec}": cannot resolve from the Hub: ${(err as Error).message}`,
      1,
      {
        cause: err,
      },
    );
  }
  const missing = required.filter((f) => !existsSync(join(resolved.dir, f)));
  if (missing.length > 0) {
    throw new SubmitError(
      `${role} "${spec}": the fetched snapshot lacks ${missing.join(", ")}`,
      1,
      { where: { file: resolved.dir } },
    );
  }
  const commit = resolved.commit ?? resolved.revision;
  return {
    spec,
    label: resolved.repo ?? spec,
    dir: resolved.dir,
    kind: "hub",
    ...(commit !== undefined ? { commit } : {}),
    fingerprint: commit ?? (await localFingerprint(resolved.dir)),
  };
}

import { readdir, rename, rm, stat, mkdir } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { atomicTempName } from "@merge/tensor-io";
import { SubmitError } from "./errors.js";

/** What an export folder holds, by kind: the names a later export may replace. */
export type ExportKind = "model" | "adapter";

const MODEL_CARD = "README.md";

/** The files a --save-model folder can hold (shards by pattern, see isExportFile). */
export const MODEL_EXPORT_FILES = [
  "config.json",
  "generation_config.json",
  "model.safetensors.index.json",
  MODEL_CARD,
] as const;

/** The files a --save-adapter folder holds. */
export const ADAPTER_EXPORT_FILES = [
  "adapter_config.json",
  "adapter_model.safetensors",
  MODEL_CARD,
] as const;

/** Tokenizer files of a base that --save-model copies when the base has them. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
  "vocab.json",
  "merges.txt",
] as const;

const SHARD = /^model-\d{5}-of-\d{5}\.safetensors$/;

function isExportFile(kind: ExportKind, name: string): boolean {
  if (kind === "adapter") return (ADAPTER_EXPORT_FILES as readonly string[]).includes(name);
  return (
    (MODEL_EXPORT_FILES as readonly string[]).includes(name) ||
    (TOKENIZER_FILES as readonly string[]).includes(name) ||
    SHARD.test(name)
  );
}

/**
 * The policy for an existing export folder, checked before any tensor is read: a folder that
 * does not exist or is empty is written; one that holds only files an earlier export of the
 * same kind writes is replaced as a whole (stale shards of a larger earlier model included);
 * anything else (a file, or a folder with other files) is refused, so an export never deletes
 * files it did not write.
 */
export async function checkExportDir(dir: string, kind: ExportKind, flag: string): Promise<void> {
  let names: string[];
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) {
      throw new SubmitError(`${flag} ${dir} exists and is not a folder`, 1, {
        where: { file: dir },
      });
    }
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const foreign = names.filter((n) => !isExportFile(kind, n)).sort();
  if (foreign.length > 0) {
    throw new SubmitError(
      `${flag} ${dir} is not empty and holds files that an earlier ${flag} export does not write (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""}); it would be replaced as a whole, so pick a new or empty folder, or remove them`,
      1,
      { where: { file: dir } },
    );
  }
}

/**
 * Writes an export folder atomically: `write` fills a hidden temporary sibling
 * (atomicTempName, so a killed run's leftover is swept by the next run), which then replaces
 * `dir`; readers see the old folder or the complete new one, never a mix.
 */
export async function publishExportDir(
  dir: string,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, atomicTempName(basename(dir)));
  await mkdir(tmp);
  try {
    await write(tmp);
    let old: string | null = join(parent, atomicTempName(basename(dir)));
    try {
      await rename(dir, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      old = null;
    }
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (old !== null) await rename(old, dir).catch(() => {}); // put the earlier export back
      throw err;
    }
    if (old !== null) await rm(old, { recursive: true, force: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

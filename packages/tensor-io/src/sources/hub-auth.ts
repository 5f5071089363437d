/**
 * Where the Hub token comes from, in huggingface_hub's order: the `token` option, else HF_TOKEN,
 * else the token file that `hf auth login` writes (HF_TOKEN_PATH, else $HF_HOME/token, HF_HOME
 * defaulting to $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface). The value is only ever put
 * into request headers; `from` says where it came from (a name or a path, never the value).
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { NotRegularFileError, readRegularFile } from "../fs-safe.js";

export interface HubToken {
  value: string;
  /** "the token option", "HF_TOKEN" or the token file's path. */
  from: string;
}

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

/** The token file huggingface_hub reads and `hf auth login` writes. */
export function tokenFilePath(): string {
  const explicit = process.env.HF_TOKEN_PATH;
  if (explicit) return expandHome(explicit);
  const home =
    process.env.HF_HOME ||
    join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "huggingface");
  return join(expandHome(home), "token");
}

/**
 * The token to send, or undefined for anonymous access. `option` false means no token at all; an
 * empty or blank value anywhere counts as unset (as huggingface_hub does). A token file that is
 * missing means no token; one that cannot be read (not a regular file, no permission) is reported
 * through `onWarning` and skipped, so a broken file never blocks public downloads.
 */
export async function findHubToken(
  option: string | false | undefined,
  onWarning: (message: string) => void,
): Promise<HubToken | undefined> {
  if (option === false) return undefined;
  if (option !== undefined && option.trim() !== "") {
    return { value: option.trim(), from: "the token option" };
  }
  const env = process.env.HF_TOKEN?.trim();
  if (env) return { value: env, from: "HF_TOKEN" };
  const path = tokenFilePath();
  let text: string;
  try {
    // Not a plain readFile: a FIFO at the token path must not block the run.
    text = (await readRegularFile(path)).toString("utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    const why =
      error instanceof NotRegularFileError ? error.message : (code ?? (error as Error).message);
    onWarning(`warning: ignoring the Hub token file ${path}: it cannot be read (${why})`);
    return undefined;
  }
  const value = text.trim();
  return value === "" ? undefined : { value, from: path };
}

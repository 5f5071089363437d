/**
 * Opening untrusted paths without blocking: open(2) on a FIFO waits for a writer, forever if
 * none comes, and a character device can stream without end. Only regular files are read.
 */
import { constants, type Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";

/** What a non-regular file is, for messages ("a FIFO", "a directory", ...). */
export function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  return "not a plain file";
}

/** Thrown by openRegularFile; callers turn it into their package's typed error. */
export class NotRegularFileError extends Error {
  readonly kind: string;
  constructor(kind: string) {
    super(`not a regular file (${kind})`);
    this.kind = kind;
  }
}

// O_NONBLOCK makes open(2) return at once on a FIFO (it has no effect on regular files), so a
// FIFO swapped in between the stat and the open still cannot block. Absent on Windows.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * Opens `path` (following symlinks, as the Hub cache needs) for reading if it is a regular
 * file; else throws NotRegularFileError. Other failures are the fs errors (ENOENT, EACCES...).
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const before = await stat(path);
  if (!before.isFile()) throw new NotRegularFileError(fileKind(before));
  const handle = await open(path, OPEN_FLAGS);
  try {
    const after = await handle.stat();
    if (!after.isFile()) throw new NotRegularFileError(fileKind(after));
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The whole content of a regular file (see openRegularFile). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await openRegularFile(path);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

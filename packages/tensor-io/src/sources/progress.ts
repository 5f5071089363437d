/**
 * Download progress by watching the partial blob that @huggingface/hub's downloadFileToCacheDir
 * writes (`blobs/<etag>.incomplete`): it works for plain and Xet-backed files alike, without
 * intercepting the library's network calls.
 */
import { stat } from "node:fs/promises";

export interface ProgressEvent {
  file: string;
  loaded: number;
  total?: number;
}

export async function withProgress<T>(
  file: string,
  total: number | undefined,
  partialPath: string | undefined,
  onProgress: ((e: ProgressEvent) => void) | undefined,
  run: () => Promise<T>,
  intervalMs = 250,
): Promise<T> {
  if (onProgress === undefined) return run();
  const event = (loaded: number): ProgressEvent =>
    total === undefined ? { file, loaded } : { file, loaded, total };
  onProgress(event(0));
  let last = 0;
  const timer =
    partialPath === undefined
      ? undefined
      : setInterval(() => {
          stat(partialPath).then(
            (s) => {
              if (s.size !== last) {
                last = s.size;
                onProgress(event(s.size));
              }
            },
            () => {},
          );
        }, intervalMs);
  try {
    const result = await run();
    onProgress(event(total ?? last));
    return result;
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
}

/** A ready-made onProgress that prints one line per file step to stderr (for CLIs). */
export function printProgress(
  stream: NodeJS.WritableStream = process.stderr,
): (e: ProgressEvent) => void {
  const lastPercent = new Map<string, number>();
  return (e) => {
    const percent = e.total ? Math.floor((100 * e.loaded) / e.total) : undefined;
    const step = percent === undefined ? e.loaded : Math.floor(percent / 10);
    if (lastPercent.get(e.file) === step && e.loaded !== e.total) return;
    lastPercent.set(e.file, step);
    const mb = (n: number) => (n / 1e6).toFixed(1);
    stream.write(
      `downloading ${e.file}: ${mb(e.loaded)}${e.total === undefined ? "" : ` / ${mb(e.total)}`} MB${percent === undefined ? "" : ` (${percent}%)`}\n`,
    );
  };
}

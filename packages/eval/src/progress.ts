import cliProgress from "cli-progress";

/** Where the evaluation loop reports how far it is. */
export interface ProgressSink {
  start(total: number, what: string): void;
  update(done: number, what: string): void;
  stop(): void;
}

export const silentProgress: ProgressSink = { start() {}, update() {}, stop() {} };

/**
 * A terminal progress bar with ETA on stderr. Quiet (a no-op) unless stderr is a TTY, so logs
 * and CI output stay clean.
 */
export function terminalProgress(
  stream: NodeJS.WriteStream = process.stderr,
  label = "evaluate",
  unit = "rows",
): ProgressSink {
  if (!stream.isTTY) return silentProgress;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {value}/{total} ${unit} | {duration_formatted} elapsed | ETA {eta_formatted} | {what}`,
      etaBuffer: 50,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, what) => bar.start(total, 0, { what }),
    update: (done, what) => bar.update(done, { what }),
    stop: () => bar.stop(),
  };
}

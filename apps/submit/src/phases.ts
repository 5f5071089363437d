/** Time and memory of one pipeline phase. */
export interface PhaseRecord {
  name: string;
  seconds: number;
  /** Highest resident set size sampled during the phase, in MiB. */
  peakRssMiB: number;
  note?: string;
}

const MiB = 1024 * 1024;

/**
 * Times phases and samples the resident set size every 100 ms while one runs, so each phase
 * gets its own peak (process.resourceUsage().maxRSS only gives the peak of the whole process).
 */
export class PhaseTimer {
  readonly phases: PhaseRecord[] = [];

  async run<T>(
    name: string,
    work: () => Promise<T>,
    note?: (result: T) => string | undefined,
  ): Promise<T> {
    let peak = process.memoryUsage.rss();
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 100);
    sampler.unref();
    const t0 = performance.now();
    let result: T | undefined;
    try {
      result = await work();
      return result;
    } finally {
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage.rss());
      const text = result !== undefined && note ? note(result) : undefined;
      this.phases.push({
        name,
        seconds: (performance.now() - t0) / 1000,
        peakRssMiB: Math.round(peak / MiB),
        ...(text ? { note: text } : {}),
      });
    }
  }

  /** Records a phase measured elsewhere (e.g. merging interleaved with the ONNX build). */
  add(record: PhaseRecord): void {
    this.phases.push(record);
  }
}

/** Peak resident set size of the whole process so far, in MiB. */
export function processPeakRssMiB(): number {
  // maxRSS is in kilobytes.
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

export function formatPhaseTable(phases: readonly PhaseRecord[]): string {
  const rows = phases.map((p) => [
    p.name,
    p.seconds.toFixed(2),
    String(p.peakRssMiB),
    p.note ?? "",
  ]);
  const head = ["phase", "seconds", "peak RSS MiB", "note"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

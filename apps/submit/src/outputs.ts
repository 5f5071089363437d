import { realpathSync } from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { SubmitError } from "./errors.js";
import { resolveFrom } from "./workspace.js";

/** One CSV to answer and where its predictions go. */
export interface OutputJob {
  /** The input as given (flag or config), for messages. */
  spec: string;
  input: string;
  out: string;
  labelled: boolean;
}

/**
 * Decides the predictions file of every input: the unlabelled data CSV writes to `outPath`,
 * each labelled CSV to `<out dir>/<its file name>`. Refuses any two inputs that would write
 * the same file (or an input that would be overwritten by its own predictions), since the
 * later one would silently replace the other's predictions.
 */
export function planOutputs(
  root: string,
  outPath: string,
  data: string | undefined,
  labelled: readonly string[],
): OutputJob[] {
  const jobs: OutputJob[] = [];
  if (data !== undefined) {
    jobs.push({
      spec: data,
      input: resolveFrom(root, data),
      out: resolve(outPath),
      labelled: false,
    });
  }
  const outDir = dirname(resolve(outPath));
  for (const spec of labelled) {
    const input = resolveFrom(root, spec);
    jobs.push({ spec, input, out: join(outDir, basename(input)), labelled: true });
  }
  const byOut = new Map<string, OutputJob>();
  for (const job of jobs) {
    const what = (j: OutputJob) => (j.labelled ? `--eval-labelled ${j.spec}` : `--data ${j.spec}`);
    if (job.input === job.out) {
      throw new SubmitError(
        `${what(job)}: its predictions would be written to ${job.out}, over the input itself; pass a different --out folder`,
        1,
        { where: { file: job.out } },
      );
    }
    const other = byOut.get(job.out);
    if (other !== undefined) {
      throw new SubmitError(
        `${what(other)} and ${what(job)} would both write predictions to ${job.out}${
          other.labelled ? "" : " (the --out file)"
        }; rename one of the labelled files or pass a different --out`,
        1,
        { where: { file: job.out } },
      );
    }
    byOut.set(job.out, job);
  }
  return jobs;
}

/** The path with symlinks resolved as far as it exists (an output folder may not exist yet). */
function realish(path: string): string {
  const abs = resolve(path);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail.reverse());
    } catch {
      const parent = dirname(head);
      if (parent === head) return abs;
      tail.push(basename(head));
      head = parent;
    }
  }
}

/** True when `path` is `dir` or lies inside it. */
function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep));
}

/**
 * Refuses any output folder (predictions, report, build cache, saved adapter) that is a model
 * source's folder or inside one: writing there would overwrite an adapter or a checkpoint.
 */
export function checkOutputsOutsideSources(
  outputs: ReadonlyArray<{ what: string; path: string }>,
  sources: ReadonlyArray<{ label: string; dir: string }>,
): void {
  for (const o of outputs) {
    const p = realish(o.path);
    for (const s of sources) {
      if (isInside(p, realish(s.dir))) {
        throw new SubmitError(
          `${o.what} ${o.path} is inside the model folder of ${s.label} (${s.dir}); writing there could overwrite its files. Choose a folder outside every base and expert folder`,
          1,
          { where: { file: o.path } },
        );
      }
    }
  }
}

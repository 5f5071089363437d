import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { stringify } from "csv-stringify/sync";
import type { Where } from "./errors.js";

/** One answer: a choice index as text (multiple choice) or generated text. */
export interface Prediction {
  id: string;
  prediction: string;
}

export class PredictionsError extends Error {
  readonly where: Where;
  constructor(message: string, where: Where = {}) {
    super(message);
    this.name = "PredictionsError";
    this.where = where;
  }
}

/** The competition's output format: `id,prediction,dummy_field` with dummy_field 0. */
export function formatPredictionsCsv(predictions: readonly Prediction[]): string {
  for (const p of predictions) {
    if (p.prediction.trim() === "") {
      throw new PredictionsError(`prediction for id ${JSON.stringify(p.id)} is empty`, {
        id: p.id,
      });
    }
  }
  return stringify(
    predictions.map((p) => [p.id, p.prediction, "0"]),
    { header: true, columns: ["id", "prediction", "dummy_field"], record_delimiter: "unix" },
  );
}

/**
 * Writes text to `path` atomically: a temporary file in the same folder, fsynced, then renamed
 * over the target, so a killed run leaves either the old file or the new one, never half of one.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const handle = await open(tmp, "w");
  try {
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Writes `id,prediction,dummy_field` atomically; every prediction must be non-empty. */
export async function writePredictionsCsv(
  path: string,
  predictions: readonly Prediction[],
): Promise<void> {
  await writeFileAtomic(path, formatPredictionsCsv(predictions));
}

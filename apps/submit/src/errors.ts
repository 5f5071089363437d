import type { Where } from "@merge/tensor-io";

/** The error-location shape, shared with @merge/tensor-io. */
export type { Where };

/** An error in the input; the CLI reports it as one clear message (no stack) and a given exit code. */
export class SubmitError extends Error {
  readonly exitCode: number;
  readonly where: Where;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown; where?: Where }) {
    super(message, options?.cause === undefined ? {} : { cause: options.cause });
    this.name = "SubmitError";
    this.exitCode = exitCode;
    this.where = options?.where ?? {};
  }
}

/** The config file is unreadable or invalid; names the file and the field. */
export class ConfigError extends SubmitError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown; field?: string }) {
    super(`${file}: ${message}`, 1, {
      ...(options?.cause !== undefined ? { cause: options.cause } : {}),
      where: { file, ...(options?.field !== undefined ? { field: options.field } : {}) },
    });
    this.name = "ConfigError";
    this.file = file;
  }
}

/** An expert adapter does not fit the base model (unknown module, wrong shape). */
export class ExpertMismatchError extends SubmitError {
  constructor(message: string, where: Where = {}) {
    super(message, 1, { where });
    this.name = "ExpertMismatchError";
  }
}

/**
 * A bug in the toolkit, not in the input: an internal invariant failed. The CLI prints it with
 * its stack and asks for a report.
 */
export class InternalError extends Error {
  readonly where: Where;
  constructor(message: string, where: Where = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InternalError";
    this.where = where;
  }
}

/** Exit code when the time budget cut rows (the CSV is still complete and valid). */
export const EXIT_BUDGET_CUT = 3;

/** Exit code when the model failed on some rows (the CSV is still complete and valid). */
export const EXIT_ROW_ERRORS = 4;

/** An error the CLI reports as one clear message (no stack) and a given exit code. */
export class SubmitError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SubmitError";
    this.exitCode = exitCode;
  }
}

/** The config file is unreadable or invalid; names the file and the field. */
export class ConfigError extends SubmitError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, 1, options);
    this.name = "ConfigError";
    this.file = file;
  }
}

/** An expert adapter does not fit the base model (unknown module, wrong shape). */
export class ExpertMismatchError extends SubmitError {
  constructor(message: string) {
    super(message, 1);
    this.name = "ExpertMismatchError";
  }
}

/** Exit code when the time budget cut rows (the CSV is still complete and valid). */
export const EXIT_BUDGET_CUT = 3;

/** Exit code when the model failed on some rows (the CSV is still complete and valid). */
export const EXIT_ROW_ERRORS = 4;

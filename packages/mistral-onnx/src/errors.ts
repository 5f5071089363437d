/**
 * What an error is about, whichever parts apply: the toolkit-wide convention (each package
 * defines this same shape, so packages stay independent). Set next to the message.
 */
export interface Where {
  file?: string;
  tensor?: string;
  module?: string;
  /** 1-based data row (CSV). */
  row?: number;
  /** 1-based line in the file. */
  line?: number;
  /** A column name (CSV) or a 1-based character position. */
  column?: string | number;
  /** A config field, e.g. "runtime.dtype". */
  field?: string;
  /** A row id. */
  id?: string;
}

/** A bad model directory, config, weight or argument. Names the file/tensor involved when there is one. */
export class MistralOnnxError extends Error {
  readonly file: string | undefined;
  readonly tensor: string | undefined;
  readonly where: Where;
  constructor(message: string, where: Where = {}) {
    super(message);
    this.name = "MistralOnnxError";
    this.where = where;
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

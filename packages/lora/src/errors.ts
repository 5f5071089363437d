/**
 * What an error is about, whichever parts apply: the toolkit-wide convention. Defined
 * here and in the other packages that depend on nothing (@merge/lora, @merge/tensor-io,
 * @merge/eval), so they stay independent; the others re-export one of these. Set next to the message.
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

/** Bad input to the LoRA algebra: names the module (when known) and what was expected. */
export class LoraError extends Error {
  readonly module: string | undefined;
  readonly where: Where;
  constructor(message: string, module?: string) {
    super(module === undefined ? message : `${module}: ${message}`);
    this.name = "LoraError";
    this.module = module;
    this.where = module === undefined ? {} : { module };
  }
}

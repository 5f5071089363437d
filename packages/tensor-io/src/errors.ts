import { redactSecrets } from "./sources/redact.js";

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

/**
 * Typed errors of @merge/tensor-io. Every error names the file it is about and, where one is
 * involved, the tensor, so a caller can report exactly what was wrong without parsing messages.
 */
export class TensorIoError extends Error {
  readonly file: string;
  readonly tensor?: string;
  readonly where: Where;

  constructor(message: string, file: string, tensor?: string, options?: { cause?: unknown }) {
    super(
      `${file}${tensor === undefined ? "" : ` [tensor ${JSON.stringify(tensor)}]`}: ${message}`,
      options,
    );
    this.name = new.target.name;
    this.file = file;
    if (tensor !== undefined) this.tensor = tensor;
    this.where = tensor === undefined ? { file: this.file } : { file: this.file, tensor };
  }
}

/** A malformed, truncated or inconsistent .safetensors file or shard index, or a bad write request. */
export class SafetensorsError extends TensorIoError {}

/** A PEFT adapter folder that cannot be read or written (config, keys, shapes, pickle files). */
export class PeftAdapterError extends TensorIoError {}

/**
 * A model/adapter source that cannot be resolved (bad spec, missing local folder, Hub/cache
 * failures). Its message never holds a credential: Bearer values, hf_ tokens and HF_TOKEN's
 * value are redacted whoever builds it (resolve.ts also redacts the configured token).
 */
export class SourceError extends TensorIoError {
  constructor(message: string, file: string, tensor?: string, options?: { cause?: unknown }) {
    super(redactSecrets(message), redactSecrets(file), tensor, options);
  }
}

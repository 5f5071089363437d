import type { Where } from "@merge/tensor-io";

/** The error-location shape, shared with @merge/tensor-io. */
export type { Where };

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

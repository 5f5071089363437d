/** A bad model directory, config, weight or argument. Names the file/tensor involved when there is one. */
export class MistralOnnxError extends Error {
  readonly file: string | undefined;
  readonly tensor: string | undefined;
  constructor(message: string, where: { file?: string; tensor?: string } = {}) {
    super(message);
    this.name = "MistralOnnxError";
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

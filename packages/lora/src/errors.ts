/** Bad input to the LoRA algebra: names the module (when known) and what was expected. */
export class LoraError extends Error {
  readonly module: string | undefined;
  constructor(message: string, module?: string) {
    super(module === undefined ? message : `${module}: ${message}`);
    this.name = "LoraError";
    this.module = module;
  }
}

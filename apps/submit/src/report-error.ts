import { ChoiceLiteralError, CsvValidationError, PredictionsError } from "@merge/eval";
import { LoraError } from "@merge/lora";
import { MistralOnnxError } from "@merge/mistral-onnx";
import { StrategyError } from "@merge/strategies";
import { TensorIoError } from "@merge/tensor-io";
import { InternalError, SubmitError } from "./errors.js";

/** The public error classes of the toolkit's packages: errors in the input. */
const INPUT_ERRORS = [
  SubmitError,
  CsvValidationError,
  ChoiceLiteralError,
  PredictionsError,
  LoraError,
  MistralOnnxError,
  StrategyError,
  TensorIoError,
] as const;

/** True for an error the toolkit raised about its input (not a bug, not an unknown failure). */
export function isInputError(err: unknown): err is Error {
  return INPUT_ERRORS.some((c) => err instanceof c);
}

/**
 * How the CLI reports a failure: an input error as one line `error: <message>` (the message
 * names the file, tensor, row or module); an InternalError as a bug to report, with the stack;
 * anything else (not a toolkit error) as an unexpected failure, with the stack. `debug`
 * (MERGE_DEBUG) adds the stack to input errors too.
 */
export function formatCliError(err: unknown, debug = false): { text: string; exitCode: number } {
  const exitCode = err instanceof SubmitError ? err.exitCode : 1;
  if (err instanceof InternalError) {
    return {
      text: `internal error (a bug, please report it): ${err.message}\n${err.stack ?? ""}\n`,
      exitCode,
    };
  }
  if (!isInputError(err) || debug) {
    return {
      text: `error: unexpected failure\n${err instanceof Error ? err.stack : String(err)}\n`,
      exitCode,
    };
  }
  // Typed errors (SubmitError, CsvValidationError, SafetensorsError, …) name the file, tensor or
  // row and what was expected; the message is the report.
  const prefix = err instanceof SubmitError ? "" : `${err.name}: `;
  return { text: `error: ${prefix}${err.message}\n`, exitCode };
}

export {
  type AtomicFileContent,
  atomicTempName,
  atomicTempPid,
  writeFileAtomic,
  writeTextAtomic,
} from "./atomic.js";
export { DTYPE_SIZE, type DType } from "./dtypes.js";
export {
  PeftAdapterError,
  SafetensorsError,
  SourceError,
  TensorIoError,
  type Where,
} from "./errors.js";
export {
  bf16ToF32,
  decodeToF32,
  encodeFromF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
} from "./float16.js";
export { SafetensorsCheckpoint } from "./safetensors/checkpoint.js";
export { SafetensorsFile } from "./safetensors/file.js";
export type { TensorInfo, TensorToWrite } from "./safetensors/types.js";
export { writeSafetensors, writeShardedSafetensors } from "./safetensors/writer.js";
export { PeftAdapter, type PeftLoraModuleTensors } from "./peft/adapter.js";
export type { PeftLoraConfig } from "./peft/config.js";
export {
  type PeftAdapterToWrite,
  type PeftModuleToWrite,
  writePeftAdapter,
} from "./peft/writer.js";
export { type ProgressEvent, printProgress } from "./sources/progress.js";
export { parseSourceSpec, type SourceSpec } from "./sources/spec.js";
export {
  type ResolvedSource,
  type ResolveSourceOptions,
  resolveSource,
} from "./sources/resolve.js";

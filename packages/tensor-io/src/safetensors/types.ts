import type { DType } from "../dtypes.js";

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute path of the file holding the tensor. */
  file: string;
  /** Absolute byte offset of the tensor's data in that file. */
  dataOffset: number;
  byteLength: number;
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes, or a producer called once, in order, while streaming. */
  data: Uint8Array | (() => Promise<Uint8Array> | Uint8Array);
}

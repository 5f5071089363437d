import { f32ToF16 } from "@merge/tensor-io";
import type { GraphBuilder } from "../onnx/graph-builder.js";
import type { ElemType } from "../onnx/proto.js";

import type { ModelDtype } from "../options.js";

export type { ModelDtype };

/** The builder plus the small dtype helpers every part of the decoder graph uses. */
export interface GraphContext {
  g: GraphBuilder;
  dtype: ModelDtype;
  /** The model's element type: float32 or float16. */
  elem: ElemType;
  i64(values: number[]): string;
  f32(value: number): string;
  /** Cast to float32 (a no-op in fp32 models). */
  toF32(x: string): string;
  /** Cast to the model dtype (a no-op in fp32 models). */
  toModel(x: string): string;
  unsqueeze(x: string, axes: number[]): string;
  /** Float32 values as the model dtype's bytes. */
  bytes(x: Float32Array): Uint8Array;
}

export function graphContext(g: GraphBuilder, dtype: ModelDtype): GraphContext {
  const i64 = (v: number[]) => g.constant("int64", v);
  return {
    g,
    dtype,
    elem: dtype === "fp32" ? "float32" : "float16",
    i64,
    f32: (v) => g.constant("float32", [v], []),
    toF32: (x) => (dtype === "fp32" ? x : g.op1("Cast", [x], { attrs: { to: { int: 1 } } })),
    toModel: (x) => (dtype === "fp32" ? x : g.op1("Cast", [x], { attrs: { to: { int: 10 } } })),
    unsqueeze: (x, axes) => g.op1("Unsqueeze", [x, i64(axes)]),
    bytes: (x) => toBytes(x, dtype),
  };
}

export function toBytes(x: Float32Array, dtype: ModelDtype): Uint8Array {
  if (dtype === "fp32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const h = f32ToF16(x);
  return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
}

import type OnnxProto from "onnx-proto";
import { onnxProto } from "./protobuf-setup.js";

export const onnx = onnxProto.onnx;
export type TensorProto = OnnxProto.onnx.ITensorProto;
export type NodeProto = OnnxProto.onnx.INodeProto;
export type ValueInfoProto = OnnxProto.onnx.IValueInfoProto;
export type AttributeProto = OnnxProto.onnx.IAttributeProto;
export type ModelProto = OnnxProto.onnx.IModelProto;
export type GraphProto = OnnxProto.onnx.IGraphProto;

export const DataType = onnxProto.onnx.TensorProto.DataType;
export type ElemType = "float32" | "float16" | "int64" | "int32" | "uint8" | "bool";

export const ELEM_TYPE: Record<ElemType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int64: DataType.INT64,
  int32: DataType.INT32,
  uint8: DataType.UINT8,
  bool: DataType.BOOL,
};

export const ELEM_SIZE: Record<ElemType, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

/** A dimension: a fixed size or a symbolic name ("batch", "seq", ...). */
export type Dim = number | string;

export function valueInfo(name: string, elem: ElemType, dims: Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[elem],
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

export type AttrValue =
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | { string: string }
  | { tensor: TensorProto };

export function attribute(name: string, v: AttrValue): AttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ("int" in v) return { name, type: T.INT, i: v.int };
  if ("ints" in v) return { name, type: T.INTS, ints: v.ints };
  if ("float" in v) return { name, type: T.FLOAT, f: v.float };
  if ("floats" in v) return { name, type: T.FLOATS, floats: v.floats };
  if ("string" in v) return { name, type: T.STRING, s: new TextEncoder().encode(v.string) };
  return { name, type: T.TENSOR, t: v.tensor };
}

/** Little-endian raw bytes of a small typed constant. */
export function rawBytes(values: ArrayLike<number>, elem: ElemType): Uint8Array {
  const n = values.length;
  const buf = new Uint8Array(n * ELEM_SIZE[elem]);
  const view = new DataView(buf.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    switch (elem) {
      case "float32":
        view.setFloat32(i * 4, v, true);
        break;
      case "int64":
        view.setBigInt64(i * 8, BigInt(v), true);
        break;
      case "int32":
        view.setInt32(i * 4, v, true);
        break;
      case "uint8":
      case "bool":
        view.setUint8(i, v);
        break;
      case "float16":
        throw new Error("rawBytes: encode float16 constants with f32ToF16");
    }
  }
  return buf;
}

/** An inline (embedded in the protobuf) tensor; only for small constants. */
export function inlineTensor(
  name: string,
  elem: ElemType,
  dims: number[],
  raw: Uint8Array,
): TensorProto {
  return { name, dataType: ELEM_TYPE[elem], dims, rawData: raw };
}

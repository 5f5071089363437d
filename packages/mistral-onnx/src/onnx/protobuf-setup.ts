import { createRequire } from "node:module";
import type OnnxProto from "onnx-proto";

/**
 * Loads onnx-proto (CommonJS, on its own protobufjs 6). protobufjs finds its optional `long`
 * dependency through an eval'd require; under some module loaders (vitest) that yields an ES
 * module namespace instead of the Long class, and onnx-proto's generated code then fails at load
 * time. We load protobufjs from onnx-proto's own location, repair `util.Long`, then load onnx-proto.
 */
function loadOnnxProto(): typeof OnnxProto {
  const require = createRequire(import.meta.url);
  const onnxProtoPath = require.resolve("onnx-proto");
  const fromOnnxProto = createRequire(onnxProtoPath);
  const protobuf = fromOnnxProto("protobufjs/minimal") as {
    util: { Long: unknown };
    configure: () => void;
  };
  type LongLike = { fromBits?: unknown; default?: unknown } | undefined;
  const found = protobuf.util.Long as LongLike;
  if (found && typeof found.fromBits !== "function") {
    const inner = found.default as LongLike;
    protobuf.util.Long = inner && typeof inner.fromBits === "function" ? inner : undefined;
    protobuf.configure();
  }
  return require(onnxProtoPath) as typeof OnnxProto;
}

export const onnxProto = loadOnnxProto();

import { MistralOnnxError, buildOnnxModel } from "@merge/mistral-onnx";

if (typeof buildOnnxModel !== "function" || typeof MistralOnnxError !== "function")
  throw new Error("missing exports");
console.log("mistral-onnx esm ok");

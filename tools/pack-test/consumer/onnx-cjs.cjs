"use strict";
const { MistralOnnxError, buildOnnxModel } = require("@merge/mistral-onnx");

if (typeof buildOnnxModel !== "function" || typeof MistralOnnxError !== "function")
  throw new Error("missing exports");
console.log("mistral-onnx cjs ok");

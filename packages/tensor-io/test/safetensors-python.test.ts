// Reads files written by Python `safetensors` / `transformers` (tools/fixtures/tensor-io) and
// checks every tensor bit for bit against hashes computed by torch.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type DType,
  SafetensorsCheckpoint,
  SafetensorsError,
  SafetensorsFile,
} from "../src/index.js";
import { FIXTURES, readJson, sha256 } from "./helpers.js";

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  bytes_sha256: string;
  f32_sha256?: string;
}

const TORCH_DTYPE: Record<string, DType> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

describe("SafetensorsFile on a Python-written file", () => {
  const path = join(FIXTURES, "python", "single.safetensors");

  it("exposes __metadata__ and every tensor's dtype and shape", async () => {
    const expected = await readJson<{
      metadata: Record<string, string>;
      tensors: Record<string, ExpectedTensor>;
    }>(join(FIXTURES, "python", "single.expected.json"));
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.metadata).toEqual(expected.metadata);
      expect([...file.tensors.keys()].sort()).toEqual(Object.keys(expected.tensors).sort());
      for (const [name, e] of Object.entries(expected.tensors)) {
        const info = file.tensors.get(name)!;
        expect(info.dtype).toBe(TORCH_DTYPE[e.dtype]);
        expect(info.shape).toEqual(e.shape);
        expect(info.file).toBe(file.path);
        expect(sha256(await file.readBytes(name)), name).toBe(e.bytes_sha256);
        if (e.f32_sha256 !== undefined) {
          expect(sha256(await file.readF32(name)), name).toBe(e.f32_sha256);
        }
      }
    } finally {
      await file.close();
    }
  });

  it("refuses readF32 on an integer tensor and names it", async () => {
    const file = await SafetensorsFile.open(path);
    try {
      await expect(file.readF32("i32")).rejects.toMatchObject({
        name: "SafetensorsError",
        tensor: "i32",
        file: file.path,
      });
      await expect(file.readBytes("nope")).rejects.toBeInstanceOf(SafetensorsError);
    } finally {
      await file.close();
    }
  });
});

describe("SafetensorsCheckpoint on transformers' sharded save_pretrained", () => {
  it("reads every tensor through model.safetensors.index.json", async () => {
    const expected = await readJson<{ tensors: Record<string, ExpectedTensor> }>(
      join(FIXTURES, "python", "sharded.expected.json"),
    );
    const ckpt = await SafetensorsCheckpoint.open(join(FIXTURES, "python", "sharded"));
    try {
      expect(ckpt.names()).toEqual(Object.keys(expected.tensors).sort());
      const shards = new Set<string>();
      for (const [name, e] of Object.entries(expected.tensors)) {
        expect(ckpt.has(name)).toBe(true);
        const info = ckpt.info(name);
        shards.add(info.file);
        expect(info.shape).toEqual(e.shape);
        expect(info.dtype).toBe(TORCH_DTYPE[e.dtype]);
        expect(sha256(await ckpt.readBytes(name)), name).toBe(e.bytes_sha256);
        expect(sha256(await ckpt.readF32(name)), name).toBe(e.f32_sha256);
      }
      expect(shards.size).toBe(2);
      expect(ckpt.has("lm_head.bias")).toBe(false);
      expect(() => ckpt.info("lm_head.bias")).toThrow(SafetensorsError);
    } finally {
      await ckpt.close();
    }
  });

  it("opens a single .safetensors file as a checkpoint", async () => {
    const ckpt = await SafetensorsCheckpoint.open(join(FIXTURES, "python", "single.safetensors"));
    try {
      expect(ckpt.names()).toContain("bf16");
    } finally {
      await ckpt.close();
    }
  });
});

import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DTYPE_SIZE,
  type DType,
  SafetensorsCheckpoint,
  SafetensorsError,
  SafetensorsFile,
  type TensorToWrite,
  bf16ToF32,
  f16ToF32,
  writeSafetensors,
  writeShardedSafetensors,
} from "../src/index.js";
import { readJson, seededRandom, withTempDir } from "./helpers.js";

function randomTensor(
  name: string,
  dtype: DType,
  shape: number[],
  rand: () => number,
): TensorToWrite {
  const bytes = new Uint8Array(shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype]);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  return { name, dtype, shape, data: bytes };
}

function sampleTensors(seed: number): TensorToWrite[] {
  const rand = seededRandom(seed);
  const dtypes = Object.keys(DTYPE_SIZE) as DType[];
  return dtypes.map((dtype, i) => randomTensor(`t${i}.${dtype}`, dtype, [i + 1, 3], rand));
}

describe("writeSafetensors", () => {
  it("round-trips every dtype, metadata, scalars and empty tensors", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "out.safetensors");
      const tensors = [
        ...sampleTensors(7),
        { name: "scalar", dtype: "F32" as const, shape: [], data: new Uint8Array(4).fill(1) },
        { name: "empty", dtype: "BF16" as const, shape: [0, 5], data: new Uint8Array(0) },
      ];
      await writeSafetensors(path, tensors, { metadata: { format: "pt", ключ: "значение" } });
      const file = await SafetensorsFile.open(path);
      try {
        expect(file.metadata).toEqual({ format: "pt", ключ: "значение" });
        for (const t of tensors) {
          expect(file.tensors.get(t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape });
          expect(await file.readBytes(t.name)).toEqual(t.data);
        }
      } finally {
        await file.close();
      }
    });
  });

  it("keeps a tensor or metadata key named __proto__ as plain data", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "proto.safetensors");
      const metadata = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
      await writeSafetensors(
        path,
        [{ name: "__proto__", dtype: "U8", shape: [2], data: new Uint8Array([7, 9]) }],
        {
          metadata,
        },
      );
      const file = await SafetensorsFile.open(path);
      try {
        expect([...file.tensors.keys()]).toEqual(["__proto__"]);
        expect(Array.from(await file.readBytes("__proto__"))).toEqual([7, 9]);
        expect(Object.entries(file.metadata ?? {})).toEqual([["__proto__", "x"]]);
      } finally {
        await file.close();
      }
    });
  });

  it("pads the header with spaces to a multiple of 8 and writes data in the given order", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "out.safetensors");
      const tensors = sampleTensors(3);
      await writeSafetensors(path, tensors);
      const bytes = await readFile(path);
      const n = Number(bytes.readBigUInt64LE(0));
      expect(n % 8).toBe(0);
      const text = bytes.subarray(8, 8 + n).toString("utf8");
      expect(text.trimEnd().endsWith("}")).toBe(true);
      expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
      const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
      let offset = 0;
      for (const t of tensors) {
        const [begin, end] = header[t.name]!.data_offsets;
        expect(begin).toBe(offset);
        expect(bytes.subarray(8 + n + begin, 8 + n + end)).toEqual(
          Buffer.from(t.data as Uint8Array),
        );
        offset = end;
      }
      expect(bytes.byteLength).toBe(8 + n + offset);
    });
  });

  it("streams producers once each, in order", async () => {
    await withTempDir(async (dir) => {
      const calls: string[] = [];
      const tensors = sampleTensors(5).map((t) => ({
        ...t,
        data: async () => {
          calls.push(t.name);
          return t.data as Uint8Array;
        },
      }));
      await writeSafetensors(join(dir, "p.safetensors"), tensors);
      expect(calls).toEqual(tensors.map((t) => t.name));
    });
  });

  it("is deterministic: same tensors → byte-identical files", async () => {
    await withTempDir(async (dir) => {
      await writeSafetensors(join(dir, "a.safetensors"), sampleTensors(11), {
        metadata: { a: "1" },
      });
      await writeSafetensors(join(dir, "b.safetensors"), sampleTensors(11), {
        metadata: { a: "1" },
      });
      expect(await readFile(join(dir, "a.safetensors"))).toEqual(
        await readFile(join(dir, "b.safetensors")),
      );
    });
  });

  it("is atomic: a failing producer leaves the old file and no temp file", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "out.safetensors");
      await writeFile(path, "previous");
      const tensors = sampleTensors(1);
      tensors[2] = {
        ...tensors[2]!,
        data: () => {
          throw new Error("producer failed");
        },
      };
      await expect(writeSafetensors(path, tensors)).rejects.toThrow("producer failed");
      expect(await readFile(path, "utf8")).toBe("previous");
      expect(await readdir(dir)).toEqual(["out.safetensors"]);
    });
  });

  it("rejects wrong byte counts, duplicates and unknown dtypes with a SafetensorsError naming the tensor", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "bad.safetensors");
      const cases: TensorToWrite[][] = [
        [{ name: "w", dtype: "F32", shape: [2, 2], data: new Uint8Array(15) }],
        [{ name: "w", dtype: "F16", shape: [2], data: () => new Uint8Array(2) }],
        [{ name: "w", dtype: "X9" as DType, shape: [1], data: new Uint8Array(1) }],
        [{ name: "w", dtype: "U8", shape: [-1], data: new Uint8Array(0) }],
        [
          { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
          { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
        ],
      ];
      for (const tensors of cases) {
        await expect(writeSafetensors(path, tensors)).rejects.toMatchObject({
          name: "SafetensorsError",
          tensor: "w",
        });
      }
      expect(await readdir(dir)).toEqual([]);
    });
  });
});

describe("readF32 on written files", () => {
  it("decodes F16/BF16 (in place) and F64 exactly like the array converters", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(42);
      const halves = Uint16Array.from({ length: 10_001 }, () => Math.floor(rand() * 65536));
      const f64 = Float64Array.from({ length: 999 }, () => (rand() - 0.5) * 1e6);
      const path = join(dir, "f.safetensors");
      const raw = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      await writeSafetensors(path, [
        { name: "h", dtype: "F16", shape: [10_001], data: raw(halves) },
        { name: "b", dtype: "BF16", shape: [10_001], data: raw(halves) },
        { name: "d", dtype: "F64", shape: [999], data: raw(f64) },
      ]);
      const file = await SafetensorsFile.open(path);
      try {
        const bits = (x: Float32Array) =>
          Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
        expect(bits(await file.readF32("h"))).toEqual(bits(f16ToF32(halves)));
        expect(bits(await file.readF32("b"))).toEqual(bits(bf16ToF32(halves)));
        expect(Array.from(await file.readF32("d"))).toEqual(Array.from(f64, Math.fround));
        const target = new Uint8Array(30_000);
        expect(await file.readInto("h", target)).toEqual(raw(halves));
        await expect(file.readInto("h", new Uint8Array(10))).rejects.toBeInstanceOf(
          SafetensorsError,
        );
      } finally {
        await file.close();
      }
    });
  });
});

describe("writeShardedSafetensors", () => {
  it("splits at maxShardBytes, writes an index like transformers and reads back", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(99);
      const tensors = Array.from({ length: 7 }, (_, i) =>
        randomTensor(`layer.${i}.weight`, "F32", [10, 10], rand),
      );
      await writeShardedSafetensors(dir, tensors, {
        maxShardBytes: 1000,
        metadata: { format: "pt" },
      });
      const files = (await readdir(dir)).sort();
      expect(files).toEqual([
        "model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors",
        "model-00003-of-00004.safetensors",
        "model-00004-of-00004.safetensors",
        "model.safetensors.index.json",
      ]);
      const index = await readJson<{
        metadata: { total_size: number };
        weight_map: Record<string, string>;
      }>(join(dir, "model.safetensors.index.json"));
      expect(index.metadata.total_size).toBe(7 * 400);
      expect(index.weight_map["layer.6.weight"]).toBe("model-00004-of-00004.safetensors");
      const ckpt = await SafetensorsCheckpoint.open(dir);
      try {
        for (const t of tensors) expect(await ckpt.readBytes(t.name)).toEqual(t.data);
        expect(ckpt.names()).toEqual(tensors.map((t) => t.name).sort());
      } finally {
        await ckpt.close();
      }
    });
  });

  it("gives a tensor larger than maxShardBytes its own shard", async () => {
    await withTempDir(async (dir) => {
      const rand = seededRandom(1);
      const tensors = [
        randomTensor("small", "U8", [10], rand),
        randomTensor("big", "U8", [100], rand),
        randomTensor("small2", "U8", [10], rand),
      ];
      await writeShardedSafetensors(dir, tensors, { maxShardBytes: 50 });
      const index = await readJson<{ weight_map: Record<string, string> }>(
        join(dir, "model.safetensors.index.json"),
      );
      expect(new Set(Object.values(index.weight_map)).size).toBe(3);
    });
  });

  it("rejects a non-positive shard size", async () => {
    await withTempDir(async (dir) => {
      await expect(writeShardedSafetensors(dir, [], { maxShardBytes: 0 })).rejects.toBeInstanceOf(
        SafetensorsError,
      );
    });
  });
});

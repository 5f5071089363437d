import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SafetensorsCheckpoint, SafetensorsError, SafetensorsFile } from "../src/index.js";
import { FIXTURES, seededRandom, withTempDir } from "./helpers.js";

/** A safetensors file from a header (object or raw text) and a data section. */
function build(
  header: unknown,
  dataLength: number,
  opts: { lengthPrefix?: bigint } = {},
): Uint8Array {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const out = Buffer.alloc(8 + json.byteLength + dataLength);
  out.writeBigUInt64LE(opts.lengthPrefix ?? BigInt(json.byteLength), 0);
  json.copy(out, 8);
  return out;
}

async function openError(dir: string, bytes: Uint8Array): Promise<SafetensorsError> {
  const path = join(dir, "bad.safetensors");
  await writeFile(path, bytes);
  try {
    const file = await SafetensorsFile.open(path);
    await file.close();
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).file).toBe(path);
    return error as SafetensorsError;
  }
  throw new Error("expected SafetensorsFile.open to fail");
}

const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };

describe("SafetensorsFile rejects malformed files with a SafetensorsError naming file and tensor", () => {
  const cases: Array<[string, () => Uint8Array, RegExp, string | undefined]> = [
    ["empty file", () => new Uint8Array(0), /shorter than the 8-byte/, undefined],
    ["truncated length prefix", () => new Uint8Array(5), /shorter than the 8-byte/, undefined],
    [
      "header length past the end",
      () => build(ok, 8, { lengthPrefix: 10_000n }),
      /past the end of the file/,
      undefined,
    ],
    ["huge header length", () => build(ok, 8, { lengthPrefix: 2n ** 63n }), /exceeds/, undefined],
    ["invalid JSON", () => build('{"a": {"dtype": "F32",', 8), /not valid JSON/, undefined],
    [
      "invalid UTF-8",
      () => build(Buffer.from([0x7b, 0xff, 0x7d]).toString("latin1"), 0),
      /JSON|UTF-8/,
      undefined,
    ],
    ["header not an object", () => build("[1,2]", 0), /must be a JSON object/, undefined],
    [
      "unknown dtype",
      () => build({ a: { dtype: "F8", shape: [2], data_offsets: [0, 2] } }, 2),
      /unknown dtype "F8"/,
      "a",
    ],
    [
      "byte/shape mismatch",
      () => build({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, 8),
      /needs 12/,
      "a",
    ],
    [
      "negative dimension",
      () => build({ a: { dtype: "U8", shape: [-2], data_offsets: [0, 2] } }, 2),
      /shape/,
      "a",
    ],
    [
      "fractional offset",
      () => build({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2.5] } }, 2),
      /data_offsets/,
      "a",
    ],
    [
      "end before begin",
      () => build({ a: { dtype: "U8", shape: [0], data_offsets: [4, 2] } }, 4),
      /end before/,
      "a",
    ],
    [
      "overlapping offsets",
      () =>
        build(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          },
          12,
        ),
      /overlaps/,
      "b",
    ],
    [
      "gap between tensors",
      () =>
        build(
          {
            a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
            b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
          },
          12,
        ),
      /gap/,
      "b",
    ],
    [
      "not starting at 0",
      () => build({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8),
      /gap/,
      "a",
    ],
    [
      "offsets out of range (truncated data)",
      () => build(ok, 4),
      /past the end of the data section/,
      "a",
    ],
    ["trailing bytes", () => build(ok, 12), /trailing bytes/, undefined],
    ["metadata not strings", () => build({ __metadata__: { a: 1 } }, 0), /__metadata__/, undefined],
    ["entry not an object", () => build({ a: [1, 2] }, 0), /header entry/, "a"],
  ];

  for (const [what, bytes, message, tensor] of cases) {
    it(what, async () => {
      await withTempDir(async (dir) => {
        const error = await openError(dir, bytes());
        expect(error.message).toMatch(message);
        expect(error.tensor).toBe(tensor);
        expect(error.message).toContain(join(dir, "bad.safetensors"));
      });
    });
  }

  it("a missing file", async () => {
    await expect(SafetensorsFile.open("/nonexistent/x.safetensors")).rejects.toMatchObject({
      name: "SafetensorsError",
      file: "/nonexistent/x.safetensors",
    });
  });

  it("a directory instead of a file", async () => {
    await withTempDir(async (dir) => {
      await expect(SafetensorsFile.open(dir)).rejects.toMatchObject({
        name: "SafetensorsError",
        file: dir,
      });
    });
  });

  it("a file truncated after open reports the tensor being read", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "t.safetensors");
      await writeFile(path, build(ok, 8));
      const file = await SafetensorsFile.open(path);
      try {
        await writeFile(path, build(ok, 2));
        await expect(file.readBytes("a")).rejects.toMatchObject({
          name: "SafetensorsError",
          tensor: "a",
        });
      } finally {
        await file.close();
      }
    });
  });

  it("a shard index pointing at a shard without the tensor", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "s1.safetensors"), build(ok, 8));
      await writeFile(
        join(dir, "model.safetensors.index.json"),
        JSON.stringify({ weight_map: { a: "s1.safetensors", b: "s1.safetensors" } }),
      );
      await expect(SafetensorsCheckpoint.open(dir)).rejects.toMatchObject({
        name: "SafetensorsError",
        tensor: "b",
      });
      await writeFile(
        join(dir, "model.safetensors.index.json"),
        JSON.stringify({ weight_map: { a: "../s1" } }),
      );
      await expect(SafetensorsCheckpoint.open(dir)).rejects.toMatchObject({
        name: "SafetensorsError",
        tensor: "a",
      });
      await writeFile(join(dir, "model.safetensors.index.json"), "{not json");
      await expect(SafetensorsCheckpoint.open(dir)).rejects.toBeInstanceOf(SafetensorsError);
    });
  });

  it("a folder with both model.safetensors and an index is ambiguous, not silently one of them", async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, "model.safetensors"), build(ok, 8));
      await writeFile(join(dir, "s1.safetensors"), build(ok, 8));
      await writeFile(
        join(dir, "model.safetensors.index.json"),
        JSON.stringify({ weight_map: { a: "s1.safetensors" } }),
      );
      const error = await SafetensorsCheckpoint.open(dir).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as SafetensorsError).message).toMatch(
        /both model\.safetensors and .*ambiguous/,
      );
      // Naming the file directly still works.
      const single = await SafetensorsCheckpoint.open(join(dir, "model.safetensors"));
      await single.close();
    });
  });
});

describe("mutation test: seeded random header corruptions", () => {
  it("3000 corrupted files: open/read either succeed or throw SafetensorsError, nothing else", async () => {
    const original = new Uint8Array(await readFile(join(FIXTURES, "python", "single.safetensors")));
    const headerLength = Number(Buffer.from(original).readBigUInt64LE(0));
    const rand = seededRandom(20260226);
    const pick = (n: number) => Math.floor(rand() * n);
    const interesting = Buffer.from('{}[]":,0123456789-.eE FBIU', "utf8");
    let rejected = 0;

    await withTempDir(async (dir) => {
      const path = join(dir, "m.safetensors");
      for (let iteration = 0; iteration < 3000; iteration++) {
        let bytes = Buffer.from(original);
        const edits = 1 + pick(3);
        for (let e = 0; e < edits; e++) {
          const at = 8 + pick(headerLength);
          switch (pick(6)) {
            case 0: // flip bits of a header byte
              bytes[at] = bytes[at]! ^ (1 << pick(8));
              break;
            case 1: // overwrite with a JSON-significant character
              bytes[at] = interesting[pick(interesting.length)]!;
              break;
            case 2: // delete a header byte (length prefix now wrong or fixed below)
              bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
              break;
            case 3: // truncate the file anywhere
              bytes = bytes.subarray(0, pick(bytes.length));
              break;
            case 4: // corrupt the length prefix
              bytes = Buffer.from(bytes);
              if (bytes.length >= 8) bytes.writeBigUInt64LE(BigInt(pick(headerLength * 2)), 0);
              break;
            default: // change a digit (shifts offsets/shapes while keeping JSON valid)
              for (let k = at; k < 8 + headerLength && k < bytes.length; k++) {
                if (bytes[k]! >= 0x30 && bytes[k]! <= 0x39) {
                  bytes[k] = 0x30 + pick(10);
                  break;
                }
              }
          }
        }
        await writeFile(path, bytes);
        try {
          const file = await SafetensorsFile.open(path);
          try {
            for (const [name, info] of file.tensors) {
              await file.readBytes(name);
              if (["F64", "F32", "F16", "BF16"].includes(info.dtype)) await file.readF32(name);
            }
          } finally {
            await file.close();
          }
        } catch (error) {
          if (!(error instanceof SafetensorsError)) {
            throw new Error(
              `iteration ${iteration}: non-SafetensorsError escaped: ${String(error)}`,
            );
          }
          expect(error.file).toBe(path);
          rejected++;
        }
      }
    });
    // The corruptions must actually exercise the error paths.
    expect(rejected).toBeGreaterThan(2000);
  });
});

describe("SafetensorsError carries `where`", () => {
  it("a bad header names the file (and the tensor when one is at fault)", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "bad.safetensors");
      const header = await openError(dir, build('{"a": {"dtype": "F32",', 8));
      expect(header.where).toEqual({ file: path });
      const tensor = await openError(
        dir,
        build({ a: { dtype: "F8", shape: [2], data_offsets: [0, 2] } }, 2),
      );
      expect(tensor.where).toEqual({ file: path, tensor: "a" });
    });
  });
});

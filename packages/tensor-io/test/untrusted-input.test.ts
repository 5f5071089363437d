/**
 * Untrusted adapters, configs and files (issue 11): nothing may hang, escape its folder or
 * silently change a run; every failure is a typed error naming the file.
 */
import { spawnSync } from "node:child_process";
import { cp, mkdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  PeftAdapter,
  PeftAdapterError,
  SafetensorsCheckpoint,
  SafetensorsError,
  SafetensorsFile,
} from "../src/index.js";
import { FIXTURES, withTempDir } from "./helpers.js";
import { runIsolated } from "./isolated.js";

const PY_ADAPTER = join(FIXTURES, "python", "peft-adapter");

/** A copy of the Python peft adapter with its adapter_config.json edited. */
async function adapterWithConfig(
  dir: string,
  edit: (config: Record<string, unknown>) => void,
): Promise<string> {
  const folder = join(dir, "adapter");
  await cp(PY_ADAPTER, folder, { recursive: true });
  const path = join(folder, "adapter_config.json");
  const config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  edit(config);
  await writeFile(path, JSON.stringify(config));
  return folder;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

describe("D2: rank_pattern / alpha_pattern keys run on a linear-time regex engine", () => {
  it("a backtracking key such as (.*)*X does not hang PeftAdapter.open and matches as PEFT does", async () => {
    await withTempDir(async (dir) => {
      const folder = await adapterWithConfig(dir, (c) => {
        c.rank_pattern = { "(.*)*X": 3, "model.layers.1.self_attn.v_proj": 2 };
        c.alpha_pattern = { "(.*)*X": 5, "(.*)*q_proj": 6, "(a|a)*down_proj": 3 };
      });
      // In a child process: a catastrophic backtrack is a synchronous loop that no in-process
      // timeout can interrupt.
      const result = await runIsolated(
        dir,
        `const adapter = await lib.PeftAdapter.open(${JSON.stringify(folder)});
const out = Object.fromEntries(adapter.modules().map((m) => {
  const { rank, alpha } = adapter.moduleInfo(m);
  return [m, [rank, alpha]];
}));
await adapter.close();
const { isTargetModule } = await import(${JSON.stringify(join(import.meta.dirname, "../src/peft/config.ts"))});
out.target = [isTargetModule("(.*)*X", "model.layers.0.self_attn.q_proj", "f"),
  isTargetModule("(.*)*q_proj", "model.layers.0.self_attn.q_proj", "f")];
console.log(JSON.stringify(out));`,
      );
      expect(result.finished, "PeftAdapter.open hung on a backtracking pattern key").toBe(true);
      expect(result.stderr).toBe("");
      // Python peft: re.match(r"(.*\.)?(" + key + r")$", module) for each key in order.
      expect(JSON.parse(result.stdout)).toEqual({
        "model.layers.0.mlp.down_proj": [4, 3],
        "model.layers.0.self_attn.q_proj": [4, 6],
        "model.layers.0.self_attn.v_proj": [4, 8],
        "model.layers.1.mlp.down_proj": [4, 3],
        "model.layers.1.self_attn.q_proj": [4, 6],
        "model.layers.1.self_attn.v_proj": [2, 8],
        target: [false, true],
      });
    });
  });

  it("keeps Python re syntax that RE2 shares: named groups, classes, escapes", async () => {
    await withTempDir(async (dir) => {
      const folder = await adapterWithConfig(dir, (c) => {
        c.rank_pattern = { "model\\.layers\\.(?P<n>1)\\.self_attn\\.v_proj": 2 };
        c.alpha_pattern = { "layers\\.[0-9]+\\.self_attn\\.q_proj": 7 };
      });
      const adapter = await PeftAdapter.open(folder);
      try {
        expect(adapter.moduleInfo("model.layers.1.self_attn.v_proj").rank).toBe(2);
        expect(adapter.moduleInfo("model.layers.0.self_attn.q_proj").alpha).toBe(7);
        expect(adapter.moduleInfo("model.layers.0.mlp.down_proj").alpha).toBe(8);
      } finally {
        await adapter.close();
      }
    });
  });

  it.each([
    ["lookahead", "(?=q)q_proj", /lookaround/],
    ["lookbehind", "(?<=\\.)q_proj", /lookaround/],
    ["negative lookahead", "(?!v)q_proj", /lookaround/],
    ["backreference", "(q)\\1?_proj", /backreference/],
  ])(
    "a key using %s (absent from RE2) is a PeftAdapterError naming file and key",
    async (_what, key, why) => {
      await withTempDir(async (dir) => {
        const folder = await adapterWithConfig(dir, (c) => {
          c.alpha_pattern = { [key]: 2 };
        });
        const error = await rejection(PeftAdapter.open(folder));
        expect(error).toBeInstanceOf(PeftAdapterError);
        const e = error as PeftAdapterError;
        expect(e.file).toBe(join(folder, "adapter_config.json"));
        expect(e.message).toContain(`alpha_pattern key ${JSON.stringify(key)}`);
        expect(e.message).toMatch(why);
      });
    },
  );

  it("an invalid pattern key is a PeftAdapterError naming file and key", async () => {
    await withTempDir(async (dir) => {
      const folder = await adapterWithConfig(dir, (c) => {
        c.rank_pattern = { "q_proj[": 2 };
      });
      const error = await rejection(PeftAdapter.open(folder));
      expect(error).toBeInstanceOf(PeftAdapterError);
      expect((error as PeftAdapterError).message).toContain('rank_pattern key "q_proj["');
    });
  });
});

/** A safetensors file from raw header text and a zeroed data section. */
function safetensorsBytes(headerText: string, dataLength = 0): Uint8Array {
  const json = Buffer.from(headerText, "utf8");
  const out = Buffer.alloc(8 + json.byteLength + dataLength);
  out.writeBigUInt64LE(BigInt(json.byteLength), 0);
  json.copy(out, 8);
  return out;
}

const deep = (n: number, leaf = "0") => `${"[".repeat(n)}${leaf}${"]".repeat(n)}`;
const deepObject = (n: number) => `${'{"k":'.repeat(n)}0${"}".repeat(n)}`;

describe("D1: deeply nested JSON is a typed error, not a RangeError", () => {
  it.each([
    ["a tensor entry", `{"a": ${deep(5000)}}`],
    ["a tensor's shape", `{"a": {"dtype": "F32", "shape": ${deep(5000)}, "data_offsets": [0, 0]}}`],
    ["__metadata__", `{"__metadata__": ${deepObject(5000)}}`],
    ["a metadata value", `{"__metadata__": {"k": ${deep(100_000)}}}`],
    ["the whole header", deep(5000)],
  ])("5,000+ levels in %s of a safetensors header", async (_where, header) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "deep.safetensors");
      await writeFile(path, safetensorsBytes(header));
      const error = await rejection(SafetensorsFile.open(path));
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as SafetensorsError).file).toBe(path);
      expect((error as Error).message.length).toBeLessThan(1000);
    });
  });

  it.each([
    ["r", deep(5000)],
    ["peft_type", deepObject(5000)],
    ["lora_alpha", deep(100_000)],
    // Not read by this package, but kept in config.raw and written back by writePeftAdapter.
    ["loftq_config", deep(5000)],
  ])("5,000+ levels in %s of adapter_config.json", async (field, value) => {
    await withTempDir(async (dir) => {
      const folder = await adapterWithConfig(dir, (c) => {
        delete c[field];
      });
      const path = join(folder, "adapter_config.json");
      // JSON.stringify cannot write this deep either: splice the text in.
      const text = (await readFile(path, "utf8")).replace(/^\{/, `{"${field}": ${value},`);
      await writeFile(path, text);
      const error = await rejection(PeftAdapter.open(folder));
      expect(error).toBeInstanceOf(PeftAdapterError);
      expect((error as PeftAdapterError).file).toBe(path);
      expect((error as Error).message.length).toBeLessThan(1000);
    });
  });

  it("5,000 levels in a shard index's weight_map", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "model.safetensors.index.json");
      await writeFile(path, `{"weight_map": {"a": ${deep(5000)}}}`);
      const error = await rejection(SafetensorsCheckpoint.open(path));
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as SafetensorsError).file).toBe(path);
    });
  });
});

describe("describeJson: bounded rendering of untrusted values for messages", () => {
  it("keeps short values as JSON and cuts deep, wide or long ones to the limit", async () => {
    const { describeJson } = await import("../src/json-safe.js");
    expect(describeJson({ a: [1, "x"], b: null })).toBe('{"a":[1,"x"],"b":null}');
    expect(describeJson(undefined)).toBe("undefined");
    expect(describeJson(JSON.parse(deep(100_000)))).toBe("[[[[[[[[[...]]]]]]]]]");
    expect(describeJson(new Array(1e6).fill(7)).length).toBe(80);
    expect(describeJson("x".repeat(1e6)).length).toBe(80);
  });
});

const HAS_MKFIFO =
  process.platform !== "win32" && spawnSync("mkfifo", ["--help"]).error === undefined;

function mkfifo(path: string): void {
  const r = spawnSync("mkfifo", [path]);
  if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.stderr}`);
}

describe.skipIf(!HAS_MKFIFO)(
  "D9: a FIFO (or other non-regular file) is refused, never opened for a blocking read",
  () => {
    // Each case runs in a child killed at a deadline: a blocked open(2) cannot be cancelled.
    async function outcome(
      dir: string,
      call: string,
    ): Promise<{ name: string; file: string; message: string }> {
      const result = await runIsolated(
        dir,
        `try { await ${call}; console.log(JSON.stringify({ name: "resolved" })); }
catch (e) { console.log(JSON.stringify({ name: e.constructor.name, file: e.file, message: e.message })); }`,
        20_000,
      );
      expect(result.finished, `${call} blocked on a FIFO`).toBe(true);
      return JSON.parse(result.stdout);
    }

    it("adapter_model.safetensors as a FIFO", async () => {
      await withTempDir(async (dir) => {
        const folder = await adapterWithConfig(dir, () => {});
        const weights = join(folder, "adapter_model.safetensors");
        await rm(weights);
        mkfifo(weights);
        const e = await outcome(dir, `lib.PeftAdapter.open(${JSON.stringify(folder)})`);
        expect(e.name).toBe("SafetensorsError");
        expect(e.file).toBe(weights);
        expect(e.message).toMatch(/not a regular file \(a FIFO\)/);
      });
    });

    it("a .safetensors file reached through a symlink to a FIFO (Hub cache layout)", async () => {
      await withTempDir(async (dir) => {
        const blob = join(dir, "blob");
        mkfifo(blob);
        const link = join(dir, "model.safetensors");
        await (await import("node:fs/promises")).symlink(blob, link);
        const e = await outcome(dir, `lib.SafetensorsCheckpoint.open(${JSON.stringify(link)})`);
        expect(e.name).toBe("SafetensorsError");
      });
    });

    it("adapter_config.json as a FIFO", async () => {
      await withTempDir(async (dir) => {
        const folder = await adapterWithConfig(dir, () => {});
        const config = join(folder, "adapter_config.json");
        await rm(config);
        mkfifo(config);
        const e = await outcome(dir, `lib.PeftAdapter.open(${JSON.stringify(folder)})`);
        expect(e.name).toBe("PeftAdapterError");
        expect(e.file).toBe(config);
        expect(e.message).toMatch(/not a regular file \(a FIFO\)/);
      });
    });

    it("a shard index as a FIFO", async () => {
      await withTempDir(async (dir) => {
        const index = join(dir, "model.safetensors.index.json");
        mkfifo(index);
        const e = await outcome(dir, `lib.SafetensorsCheckpoint.open(${JSON.stringify(index)})`);
        expect(e.name).toBe("SafetensorsError");
        expect(e.file).toBe(index);
        expect(e.message).toMatch(/not a regular file \(a FIFO\)/);
      });
    });

    it("a directory named adapter_config.json", async () => {
      await withTempDir(async (dir) => {
        const folder = await adapterWithConfig(dir, () => {});
        const config = join(folder, "adapter_config.json");
        await rm(config);
        await mkdir(config);
        const error = await rejection(PeftAdapter.open(folder));
        expect(error).toBeInstanceOf(PeftAdapterError);
        expect((error as PeftAdapterError).message).toMatch(/not a regular file \(a directory\)/);
      });
    });
  },
);

describe("D10: adapter_config.json and shard indexes must be valid UTF-8", () => {
  it("an invalid byte in adapter_config.json is a PeftAdapterError with its offset, not U+FFFD", async () => {
    await withTempDir(async (dir) => {
      const folder = await adapterWithConfig(dir, (c) => {
        c.base_model_name_or_path = "org/model-@";
      });
      const path = join(folder, "adapter_config.json");
      const text = Buffer.from(await readFile(path));
      const at = text.indexOf("@");
      text[at] = 0xff;
      await writeFile(path, text);
      const error = await rejection(PeftAdapter.open(folder));
      expect(error).toBeInstanceOf(PeftAdapterError);
      expect((error as PeftAdapterError).file).toBe(path);
      expect((error as Error).message).toContain(
        `not valid UTF-8: invalid byte sequence at byte ${at}`,
      );
    });
  });

  it("an invalid byte in a shard index is a SafetensorsError", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "model.safetensors.index.json");
      await writeFile(
        path,
        Buffer.concat([
          Buffer.from('{"weight_map": {"a'),
          Buffer.from([0xc0, 0xaf]),
          Buffer.from('": "x.safetensors"}}'),
        ]),
      );
      const error = await rejection(SafetensorsCheckpoint.open(path));
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as Error).message).toContain(
        "not valid UTF-8: invalid byte sequence at byte 18",
      );
    });
  });
});

describe("D11: a huge declared tensor is a typed error before any allocation", () => {
  const TIB4 = 4 * 1024 ** 4;

  /** A sparse file whose header declares one tensor of `bytes` bytes; false if unsupported. */
  async function sparseSafetensors(path: string, dtype: string, bytes: number): Promise<boolean> {
    const size = { U8: 1, F16: 2, BF16: 2, F32: 4, F64: 8 }[dtype]!;
    const header = JSON.stringify({
      big: { dtype, shape: [bytes / size], data_offsets: [0, bytes] },
    });
    await writeFile(path, safetensorsBytes(header));
    try {
      await truncate(path, 8 + Buffer.byteLength(header) + bytes);
      return true;
    } catch {
      return false; // a filesystem without sparse files this large
    }
  }

  it.each([
    ["readBytes", "U8"],
    ["readF32", "F32"],
    ["readF32", "F16"],
    ["readF32", "BF16"],
    ["readF32", "F64"],
  ])("%s of a 4 TiB %s tensor in a sparse file", async (method, dtype) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "huge.safetensors");
      if (!(await sparseSafetensors(path, dtype, TIB4))) return;
      const file = await SafetensorsFile.open(path);
      try {
        const error = await rejection(
          method === "readBytes" ? file.readBytes("big") : file.readF32("big"),
        );
        expect(error).toBeInstanceOf(SafetensorsError);
        expect((error as SafetensorsError).file).toBe(path);
        expect((error as SafetensorsError).tensor).toBe("big");
        expect((error as Error).message).toMatch(
          /cannot allocate (4398046511104|8796093022208) bytes/,
        );
      } finally {
        await file.close();
      }
    });
  });

  it("a file truncated after open is reported before allocating the tensor", async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "shrunk.safetensors");
      const header = JSON.stringify({
        t: { dtype: "F32", shape: [1024], data_offsets: [0, 4096] },
      });
      await writeFile(path, safetensorsBytes(header, 4096));
      const file = await SafetensorsFile.open(path);
      try {
        await truncate(path, 100);
        const error = await rejection(file.readF32("t"));
        expect(error).toBeInstanceOf(SafetensorsError);
        expect((error as SafetensorsError).tensor).toBe("t");
        expect((error as Error).message).toMatch(
          /file is now 100 bytes.*changed since it was opened/,
        );
      } finally {
        await file.close();
      }
    });
  });
});

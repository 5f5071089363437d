/**
 * The three fuzz targets. Each builds its seeds once (parent side), turns (rng, seeds) into the
 * files of one case, and runs a case folder (child side) into a summary of what was accepted.
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CsvValidationError, readCompetitionCsv } from "@merge/eval";
import {
  PeftAdapter,
  SafetensorsFile,
  TensorIoError,
  type TensorToWrite,
  writeSafetensors,
} from "@merge/tensor-io";
import { parse } from "csv-parse/sync";
import { mutateCsv } from "./csv-mutate.js";
import { concat, mutateBytes, mutateJsonBytes } from "./mutate.js";
import type { Rng } from "./rng.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export type TargetName = "safetensors" | "peft-config" | "csv";
export const TARGETS: readonly TargetName[] = ["safetensors", "peft-config", "csv"];

/** Targets that misbehave on purpose, to test the harness's classification. */
export type SelfTestName =
  | "selftest-hang"
  | "selftest-escape"
  | "selftest-throw"
  | "selftest-crash";
export type RunTargetName = TargetName | SelfTestName;

/** A case file: bytes to write, or an existing file to hard-link (large unmutated seeds). */
export type CaseFile = Uint8Array | { link: string };
export type CaseFiles = Record<string, CaseFile>;

export interface Seeds {
  safetensors: Uint8Array[];
  peft: { config: unknown; weights: string }[];
  csv: { header: string[]; rows: string[][] };
}

function randomBytes(n: number, salt: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (salt * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Small safetensors files written with the repo's writer, plus the Python-written fixture. */
async function safetensorsSeeds(dir: string): Promise<Uint8Array[]> {
  await mkdir(dir, { recursive: true });
  const t = (name: string, dtype: TensorToWrite["dtype"], shape: number[], size: number) => ({
    name,
    dtype,
    shape,
    data: randomBytes(shape.reduce((a, b) => a * b, 1) * size, name.length + size),
  });
  const sets: { tensors: TensorToWrite[]; metadata?: Record<string, string> }[] = [
    { tensors: [t("w", "F32", [2, 3], 4)] },
    {
      tensors: [t("a", "F16", [4], 2), t("b", "BF16", [2, 2], 2), t("c", "F64", [1], 8)],
      metadata: { format: "pt", note: "seed ✓" },
    },
    { tensors: [t("scalar", "F32", [], 4), t("empty", "F32", [0, 3], 4), t("i", "I64", [3], 8)] },
    { tensors: [t("u", "U8", [5], 1), t("b", "BOOL", [3], 1), t("s", "I16", [2], 2)] },
    {
      tensors: [
        t("base_model.model.layer.lora_A.weight", "F32", [2, 4], 4),
        t("base_model.model.layer.lora_B.weight", "F32", [4, 2], 4),
      ],
    },
  ];
  const out: Uint8Array[] = [];
  for (const [i, s] of sets.entries()) {
    const path = join(dir, `seed-${i}.safetensors`);
    await writeSafetensors(path, s.tensors, s.metadata ? { metadata: s.metadata } : {});
    out.push(readFileSync(path));
  }
  out.push(
    readFileSync(join(REPO_ROOT, "packages/tensor-io/test/fixtures/python/single.safetensors")),
  );
  return out;
}

function peftSeeds(): Seeds["peft"] {
  const dirs = [join(REPO_ROOT, "packages/tensor-io/test/fixtures/python/peft-adapter")];
  const zoo = join(REPO_ROOT, "data/zoo/experts");
  for (const name of readdirSync(zoo).sort()) dirs.push(join(zoo, name));
  return dirs.map((d) => ({
    config: JSON.parse(readFileSync(join(d, "adapter_config.json"), "utf8")),
    weights: join(d, "adapter_model.safetensors"),
  }));
}

function csvSeeds(): Seeds["csv"] {
  const text = readFileSync(join(REPO_ROOT, "data/zoo/eval/held_in.csv"), "utf8");
  const [header, ...rows] = parse(text) as string[][];
  return { header: header!, rows: rows.slice(0, 400) };
}

export async function buildSeeds(dir: string): Promise<Seeds> {
  return { safetensors: await safetensorsSeeds(dir), peft: peftSeeds(), csv: csvSeeds() };
}

// ---------------------------------------------------------------- case generation (parent)

function u64le(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
  return b;
}

function mutateSafetensors(rng: Rng, seed: Uint8Array): Uint8Array {
  const view = new DataView(seed.buffer, seed.byteOffset, seed.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const headerBytes = seed.subarray(8, 8 + headerLen);
  const data = seed.subarray(8 + headerLen);
  switch (rng.int(5)) {
    case 4: {
      // header kept: data bytes changed, or a metadata entry changed (usually accepted)
      const header = JSON.parse(new TextDecoder().decode(headerBytes).trimEnd());
      if (rng.chance(0.5)) {
        header.__metadata__ = {
          ...(header.__metadata__ ?? {}),
          [rng.pick(["format", "k", "", "é", "__proto__"])]: rng.pick([
            "pt",
            "",
            "✓",
            "x".repeat(999),
          ]),
        };
      }
      const json = new TextEncoder().encode(JSON.stringify(header));
      const body = rng.chance(0.7) ? data.map((b) => b ^ rng.int(256)) : mutateBytes(rng, data);
      return concat([u64le(BigInt(json.byteLength)), json, body]);
    }
    case 0:
    case 1: {
      // structured: mutate the header JSON, re-frame (usually) with the right length
      const header = JSON.parse(new TextDecoder().decode(headerBytes).trimEnd());
      let json = mutateJsonBytes(rng, header);
      if (rng.chance(0.5)) {
        const padded = Math.ceil(json.byteLength / 8) * 8;
        json = concat([json, new Uint8Array(padded - json.byteLength).fill(0x20)]);
      }
      let len = BigInt(json.byteLength);
      if (rng.chance(0.15)) len += BigInt(rng.pick([-8, -1, 1, 8, 4096]));
      let body = data;
      if (rng.chance(0.2)) body = mutateBytes(rng, data);
      return concat([u64le(len), json, body]);
    }
    case 2: {
      // header length field
      const len = rng.pick([
        0n,
        1n,
        2n,
        BigInt(headerLen) - 1n,
        BigInt(headerLen) + 1n,
        BigInt(seed.byteLength),
        BigInt(seed.byteLength) - 7n,
        100_000_000n,
        2n ** 31n,
        2n ** 32n + BigInt(headerLen),
        2n ** 53n + 1n,
        2n ** 63n,
        2n ** 64n - 1n,
      ]);
      return concat([u64le(len), seed.subarray(8)]);
    }
    default: {
      // raw bytes, mostly inside the header region
      let out = seed;
      for (let k = rng.range(1, 3); k > 0; k--) out = mutateBytes(rng, out, 8 + headerLen);
      return out;
    }
  }
}

export function generateCase(target: RunTargetName, rng: Rng, seeds: Seeds): CaseFiles {
  switch (target) {
    case "selftest-hang":
    case "selftest-escape":
    case "selftest-throw":
    case "selftest-crash":
      return { "input.bin": Uint8Array.of(rng.int(256)) };
    case "safetensors":
      return { "model.safetensors": mutateSafetensors(rng, rng.pick(seeds.safetensors)) };
    case "peft-config": {
      const seed = rng.pick(seeds.peft);
      const config = rng.chance(0.05)
        ? mutateBytes(rng, new TextEncoder().encode(JSON.stringify(seed.config, null, 2)))
        : mutateJsonBytes(rng, seed.config, rng.chance(0.5) ? 2 : undefined);
      return { "adapter_config.json": config, "adapter_model.safetensors": { link: seed.weights } };
    }
    case "csv":
      return { "data.csv": mutateCsv(rng, seeds.csv.header, seeds.csv.rows) };
  }
}

export async function writeCase(dir: string, files: CaseFiles): Promise<void> {
  const { link } = await import("node:fs/promises");
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    if (content instanceof Uint8Array) await writeFile(path, content);
    else await link(content.link, path);
  }
}

// ---------------------------------------------------------------- case execution (child)

export type Summary =
  | { target: "safetensors"; tensors: Record<string, string> }
  | {
      target: "peft-config";
      r: number;
      loraAlpha: number;
      targetModules: string[] | string;
      modules: number;
    }
  | { target: "csv"; skipBadRows: boolean; ids: string[] };

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

export async function executeCase(
  target: RunTargetName,
  dir: string,
  options: { skipBadRows: boolean },
): Promise<Summary> {
  switch (target) {
    case "selftest-hang":
      for (;;) {
        // a synchronous hang: only a kill ends it
      }
    case "selftest-escape":
      await writeFile(join(dir, "..", "escaped.txt"), "outside the case folder");
      throw new CsvValidationError(dir, [], "wrote outside, then failed typed");
    case "selftest-throw":
      throw new TypeError("not a typed error");
    case "selftest-crash":
      return process.exit(3);
    case "safetensors": {
      const f = await SafetensorsFile.open(join(dir, "model.safetensors"));
      try {
        const tensors: Record<string, string> = {};
        for (const [name, info] of f.tensors) {
          tensors[name] = sha256(await f.readBytes(name));
          if (["F64", "F32", "F16", "BF16"].includes(info.dtype)) {
            const decoded = await f.readF32(name);
            const expected = info.shape.reduce((a, b) => a * b, 1);
            if (decoded.length !== expected) {
              throw new Error(`readF32 gave ${decoded.length} values, shape needs ${expected}`);
            }
          }
        }
        return { target, tensors };
      } finally {
        await f.close();
      }
    }
    case "peft-config": {
      const a = await PeftAdapter.open(dir);
      try {
        for (const m of a.modules()) await a.readModule(m);
        return {
          target,
          r: a.config.r,
          loraAlpha: a.config.loraAlpha,
          targetModules: a.config.targetModules,
          modules: a.modules().length,
        };
      } finally {
        await a.close();
      }
    }
    case "csv": {
      const ds = await readCompetitionCsv(join(dir, "data.csv"), {
        skipBadRows: options.skipBadRows,
        onWarning: () => {},
      });
      return { target, skipBadRows: options.skipBadRows, ids: ds.entries.map((e) => e.row.id) };
    }
  }
}

/** Whether an error is the target package's own typed error. */
export function isTypedError(target: RunTargetName, error: unknown): boolean {
  if (target.startsWith("selftest-")) return error instanceof CsvValidationError;
  return target === "csv" ? error instanceof CsvValidationError : error instanceof TensorIoError;
}

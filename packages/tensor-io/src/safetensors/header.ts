/**
 * Parsing and validation of a safetensors header, following the checks of the reference Rust
 * implementation (huggingface/safetensors `Metadata::validate`): the header must fit in the
 * file, be a JSON object, name known dtypes, and its tensors' byte ranges must tile the data
 * section exactly — contiguous from 0, no gaps, no overlaps, nothing after the last tensor —
 * with each range's length equal to product(shape) × dtype size.
 */
import { DTYPE_SIZE, elementCount, isDType } from "../dtypes.js";
import { SafetensorsError } from "../errors.js";
import { describeJson as describe, jsonNestingDepth, MAX_HEADER_DEPTH } from "../json-safe.js";
import type { TensorInfo } from "./types.js";

/** Same cap as the reference implementation: guards against absurd allocations. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface ParsedHeader {
  metadata: Record<string, string> | undefined;
  /** In data-offset order. */
  tensors: TensorInfo[];
  /** Absolute offset of the data section (8 + header length). */
  dataStart: number;
}

/** Reads the 8-byte little-endian header length and checks it against the file size. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(
      `file is ${fileSize} bytes, shorter than the 8-byte header length prefix`,
      file,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
      file,
    );
  }
  const length = Number(n);
  if (8 + length > fileSize) {
    throw new SafetensorsError(
      `header length ${length} runs past the end of the file (${fileSize} bytes, header would end at ${8 + length})`,
      file,
    );
  }
  return length;
}

/** Validates the header JSON bytes against a data section of `dataLength` bytes. */
export function parseHeaderJson(
  headerBytes: Uint8Array,
  dataStart: number,
  dataLength: number,
  file: string,
): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch (cause) {
    throw new SafetensorsError("header is not valid UTF-8", file, undefined, { cause });
  }
  if (jsonNestingDepth(text, MAX_HEADER_DEPTH) > MAX_HEADER_DEPTH) {
    throw new SafetensorsError(
      `header JSON nests more than ${MAX_HEADER_DEPTH} levels deep (the reference implementation's limit; a valid header needs 3)`,
      file,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(
      `header is not valid JSON (${(cause as Error).message})`,
      file,
      undefined,
      { cause },
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SafetensorsError(`header must be a JSON object, got ${describe(json)}`, file);
  }

  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(entry, file);
      continue;
    }
    tensors.push(parseTensorEntry(name, entry, dataStart, file));
  }

  // Sort by start offset, then require each range to begin where the previous one ended.
  tensors.sort((a, b) => a.dataOffset - b.dataOffset || a.byteLength - b.byteLength);
  let expectedStart = 0;
  for (const t of tensors) {
    const start = t.dataOffset - dataStart;
    if (start !== expectedStart) {
      const what =
        start < expectedStart
          ? `overlaps the previous tensor (starts at ${start}, previous ends at ${expectedStart})`
          : `leaves a gap (starts at ${start}, previous data ends at ${expectedStart}); tensors must be contiguous from offset 0`;
      throw new SafetensorsError(`data_offsets ${what}`, file, t.name);
    }
    expectedStart = start + t.byteLength;
    if (expectedStart > dataLength) {
      throw new SafetensorsError(
        `data_offsets end ${expectedStart} is past the end of the data section (${dataLength} bytes; file truncated?)`,
        file,
        t.name,
      );
    }
  }
  if (expectedStart !== dataLength) {
    throw new SafetensorsError(
      `data section is ${dataLength} bytes but the tensors cover ${expectedStart}; the file has trailing bytes`,
      file,
    );
  }
  return { metadata, tensors, dataStart };
}

function parseMetadata(entry: unknown, file: string): Record<string, string> {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new SafetensorsError(
      `__metadata__ must be an object of strings, got ${describe(entry)}`,
      file,
    );
  }
  const entries = Object.entries(entry as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        `__metadata__[${JSON.stringify(k)}] must be a string, got ${describe(v)}`,
        file,
      );
    }
  }
  // fromEntries defines own properties, so even a "__proto__" key stays data.
  return Object.fromEntries(entries) as Record<string, string>;
}

function parseTensorEntry(
  name: string,
  entry: unknown,
  dataStart: number,
  file: string,
): TensorInfo {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new SafetensorsError(
      `header entry must be an object {dtype, shape, data_offsets}, got ${describe(entry)}`,
      file,
      name,
    );
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isDType(dtype)) {
    throw new SafetensorsError(
      `unknown dtype ${describe(dtype)}; expected one of ${Object.keys(DTYPE_SIZE).join(", ")}`,
      file,
      name,
    );
  }
  if (!Array.isArray(shape)) {
    throw new SafetensorsError(
      `shape must be an array of integers, got ${describe(shape)}`,
      file,
      name,
    );
  }
  const count = elementCount(shape);
  if (count === undefined) {
    throw new SafetensorsError(
      `shape ${describe(shape)} must hold non-negative integers with a safe-integer product`,
      file,
      name,
    );
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(
      `data_offsets must be [begin, end] non-negative integers, got ${describe(offsets)}`,
      file,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    throw new SafetensorsError(`data_offsets [${begin}, ${end}] end before they begin`, file, name);
  }
  const expected = count * DTYPE_SIZE[dtype];
  if (end - begin !== expected) {
    throw new SafetensorsError(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${describe(shape)} of ${dtype} needs ${expected}`,
      file,
      name,
    );
  }
  return {
    name,
    dtype,
    shape: [...(shape as number[])],
    file,
    dataOffset: dataStart + begin,
    byteLength: expected,
  };
}

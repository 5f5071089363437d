/**
 * JSON from untrusted files, handled without unbounded recursion: JSON.parse accepts any
 * nesting, but JSON.stringify (and any recursive walk) of 5,000 levels throws RangeError.
 */

/**
 * Largest nesting (arrays and objects) accepted in a safetensors header: the reference Rust
 * implementation parses with serde_json, whose recursion limit is 128. A valid header needs 3.
 */
export const MAX_HEADER_DEPTH = 128;

/**
 * Largest nesting accepted in adapter_config.json and shard index files. Python's json.loads,
 * which PEFT and transformers use, fails near 1,000 levels; this stays well below what
 * JSON.stringify can write back.
 */
export const MAX_CONFIG_DEPTH = 512;

/**
 * The nesting depth of JSON text (brackets and braces outside strings), scanning no further
 * than the first point where it exceeds `limit`. Linear, no recursion; run before JSON.parse.
 */
export function jsonNestingDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Levels below which describeJson abbreviates containers as [...] / {...}. */
const DESCRIBE_DEPTH = 8;

/**
 * A short JSON rendering of a parsed value for error messages: at most `maxLength` characters,
 * with bounded recursion and work, whatever the value's size or depth.
 */
export function describeJson(value: unknown, maxLength = 80): string {
  let out = "";
  // Stop as soon as the text is longer than we will keep.
  const emit = (s: string): boolean => {
    out += s;
    return out.length <= maxLength;
  };
  const walk = (v: unknown, depth: number): boolean => {
    if (typeof v === "string") {
      return emit(JSON.stringify(v.length > maxLength ? v.slice(0, maxLength) : v));
    }
    if (v === null || typeof v !== "object") {
      const s = JSON.stringify(v);
      return emit(s === undefined ? String(v) : s);
    }
    const isArray = Array.isArray(v);
    if (depth >= DESCRIBE_DEPTH) return emit(isArray ? "[...]" : "{...}");
    if (!emit(isArray ? "[" : "{")) return false;
    let first = true;
    if (isArray) {
      for (const item of v as unknown[]) {
        if (!first && !emit(",")) return false;
        first = false;
        if (!walk(item, depth + 1)) return false;
      }
    } else {
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        if (!first && !emit(",")) return false;
        first = false;
        if (!walk(k, depth + 1) || !emit(":") || !walk(item, depth + 1)) return false;
      }
    }
    return emit(isArray ? "]" : "}");
  };
  walk(value, 0);
  return out.length > maxLength ? `${out.slice(0, maxLength - 3)}...` : out;
}

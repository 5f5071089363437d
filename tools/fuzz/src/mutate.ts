/**
 * Mutation operators: raw bytes, JSON trees (with raw-text splices for values JSON.stringify
 * cannot write: huge numbers, -0, NaN, duplicate keys), and CSV text.
 */
import type { Rng } from "./rng.js";

const enc = new TextEncoder();

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x0a, 0x0d, 0x2c, 0x7b, 0x5d, 0xc0];

/** One raw-byte mutation; `focus` bounds where most edits land (e.g. the header region). */
export function mutateBytes(rng: Rng, input: Uint8Array, focus = input.byteLength): Uint8Array {
  const bytes = new Uint8Array(input);
  const n = bytes.byteLength;
  const at = (limit = focus) => rng.int(Math.max(1, Math.min(limit, n)));
  switch (rng.int(8)) {
    case 0: {
      // bit flips
      if (n === 0) return bytes;
      for (let k = rng.range(1, 4); k > 0; k--) {
        const i = at();
        bytes[i] = bytes[i]! ^ (1 << rng.int(8));
      }
      return bytes;
    }
    case 1: {
      if (n === 0) return bytes;
      bytes[at()] = rng.pick(INTERESTING_BYTES);
      return bytes;
    }
    case 2:
      return bytes.slice(0, rng.int(n + 1)); // truncation
    case 3: {
      const i = at();
      const len = rng.range(1, 16);
      return concat([bytes.slice(0, i), bytes.slice(Math.min(n, i + len))]); // delete a span
    }
    case 4: {
      const i = at();
      const junk = new Uint8Array(rng.range(1, 16)).map(() => rng.int(256));
      return concat([bytes.slice(0, i), junk, bytes.slice(i)]); // insert random bytes
    }
    case 5: {
      const extra = new Uint8Array(rng.pick([1, 7, 8, 64, 4096])).map(() => rng.int(256));
      return concat([bytes, extra]); // trailing garbage
    }
    case 6: {
      // duplicate a span
      const i = at();
      const len = rng.range(1, 64);
      return concat([bytes.slice(0, i + len), bytes.slice(i, i + len), bytes.slice(i + len)]);
    }
    default: {
      // invalid or tricky UTF-8
      const seqs = [
        [0xc3],
        [0xe2, 0x82],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0xc0, 0xaf],
      ];
      const i = at();
      return concat([bytes.slice(0, i), Uint8Array.from(rng.pick(seqs)), bytes.slice(i)]);
    }
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Slot {
  parent: Json[] | Record<string, Json> | undefined;
  key: string | number;
  value: Json;
}

function slots(root: Json): Slot[] {
  const out: Slot[] = [{ parent: undefined, key: "", value: root }];
  const walk = (v: Json, depth: number) => {
    if (depth > 50 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        out.push({ parent: v, key: i, value: item });
        walk(item, depth + 1);
      });
    } else {
      for (const [k, item] of Object.entries(v)) {
        out.push({ parent: v, key: k, value: item });
        walk(item, depth + 1);
      }
    }
  };
  walk(root, 0);
  return out;
}

/** Values JSON.stringify cannot produce, spliced in as raw text. */
const RAW_VALUES = [
  "1e400",
  "-1e400",
  "-0",
  "1E+2",
  "123456789012345678901234567890",
  "9007199254740993",
  "18446744073709551616",
  "0.1e-400",
  "NaN",
  "Infinity",
  "01",
  "1.",
  "+1",
  "0x10",
  '"\\ud800"',
  '"\\u0000"',
  "tru",
  "nul",
];

const UNICODE = [
  "é",
  "e\u0301",
  "\u202e",
  "\u200b",
  "\ufeff",
  "😀",
  "\u{10ffff}",
  "漢字",
  "\u0000",
  "\\",
  '"',
];

export class JsonMutator {
  private raws: string[] = [];

  constructor(private readonly rng: Rng) {}

  private raw(text: string): string {
    this.raws.push(text);
    return `@@RAW${this.raws.length - 1}@@`;
  }

  private randomValue(depth = 0): Json {
    const r = this.rng;
    switch (r.int(depth > 2 ? 9 : 12)) {
      case 0:
        return null;
      case 1:
        return r.chance(0.5);
      case 2:
        return r.pick([0, -1, 1, 2, 3, 4, 8, 16, 0.5, -2.5, 2 ** 31, 2 ** 32, 2 ** 53, 1e308]);
      case 3:
        return this.raw(r.pick(RAW_VALUES));
      case 4:
        return "";
      case 5:
        return r.pick(["LORA", "q_proj", "v_proj", ".*", "(a+)+$", "[", "F32", "U8", "x"]);
      case 6:
        return r.pick(UNICODE).repeat(r.range(1, 4));
      case 7:
        return "A".repeat(r.pick([100, 10_000, 1_000_000]));
      case 8:
        return r.int(1_000_000);
      case 9:
        return [this.randomValue(depth + 1), this.randomValue(depth + 1)];
      case 10:
        return { [this.randomKey()]: this.randomValue(depth + 1) };
      default:
        return [];
    }
  }

  private randomKey(): string {
    return this.rng.pick([
      "__proto__",
      "constructor",
      "",
      "__metadata__",
      "r",
      "lora_alpha",
      "target_modules",
      "dtype",
      "shape",
      "data_offsets",
      this.rng.pick(UNICODE),
      "k".repeat(this.rng.range(1, 300)),
    ]);
  }

  private deep(inner: Json): string {
    const depth = this.rng.pick([10, 100, 999, 1001, 5000, 100_000]);
    const [open, close] = this.rng.chance(0.5) ? ["[", "]"] : ['{"a":', "}"];
    return this.raw(`${open.repeat(depth)}${JSON.stringify(inner)}${close.repeat(depth)}`);
  }

  private numberTweak(n: number): Json {
    const r = this.rng;
    switch (r.int(7)) {
      case 0:
        return n + 1;
      case 1:
        return n - 1;
      case 2:
        return -n;
      case 3:
        return n * r.pick([2, 1000, 2 ** 32, 2 ** 53]);
      case 4:
        return n + 0.5;
      case 5:
        return String(n);
      default:
        return this.raw(r.pick(RAW_VALUES));
    }
  }

  /** One tree mutation applied in place; returns the (possibly replaced) root. */
  mutateTree(root: Json): Json {
    const r = this.rng;
    const all = slots(root);
    const slot = r.pick(all);
    const set = (v: Json): Json => {
      if (slot.parent === undefined) return v;
      (slot.parent as Record<string | number, Json>)[slot.key] = v;
      return root;
    };
    switch (r.int(9)) {
      case 0: {
        // delete
        if (slot.parent === undefined) return root;
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
        else delete slot.parent[slot.key as string];
        return root;
      }
      case 1:
        return set(this.randomValue());
      case 2:
        return typeof slot.value === "number"
          ? set(this.numberTweak(slot.value))
          : set(this.randomValue());
      case 3:
        return set(this.deep(slot.value));
      case 4: {
        // add a key or element
        const target = slot.value;
        if (Array.isArray(target)) target.push(this.randomValue());
        else if (target !== null && typeof target === "object")
          target[this.randomKey()] = this.randomValue();
        else return set([target]);
        return root;
      }
      case 5: {
        // swap with another slot's value (type changes across fields)
        const other = r.pick(all);
        return set(structuredClone(other.value));
      }
      case 6: {
        // wrap scalar in a type change
        const v = slot.value;
        if (typeof v === "string") return set(r.chance(0.5) ? [v] : v + r.pick(UNICODE));
        if (Array.isArray(v)) return set(r.chance(0.5) ? v.join(",") : (v[0] ?? null));
        return set(r.chance(0.5) ? String(v) : [v]);
      }
      case 7: {
        // duplicate key, spliced as raw text: {"k": 1, "k": 2}
        const target = slot.value;
        if (target !== null && typeof target === "object" && !Array.isArray(target)) {
          const keys = Object.keys(target);
          if (keys.length > 0) {
            const k = r.pick(keys);
            const marker = this.raw(
              `${JSON.stringify(this.randomValue())}, ${JSON.stringify(k)}: ${JSON.stringify(target[k])}`,
            );
            target[k] = marker;
          }
        }
        return root;
      }
      default: {
        // array length/shape edits
        const v = slot.value;
        if (Array.isArray(v)) {
          if (r.chance(0.5)) v.pop();
          else v.push(structuredClone(v[0] ?? 0));
          return root;
        }
        return set(this.randomValue());
      }
    }
  }

  /** Serializes with raw splices. */
  stringify(root: Json, indent?: number): string {
    let text = JSON.stringify(root, null, indent);
    if (text === undefined) text = "null";
    // Raw splices may hold markers themselves (a duplicated key's value): replace until done.
    for (let round = 0; round < 8 && text.includes('"@@RAW'); round++) {
      text = text.replace(/"@@RAW(\d+)@@"/g, (_, i: string) => this.raws[Number(i)]!);
    }
    return text;
  }

  /** Text-level JSON mutations (after stringify). */
  mutateText(text: string): string {
    const r = this.rng;
    const i = r.int(text.length + 1);
    switch (r.int(7)) {
      case 0:
        return text.slice(0, i);
      case 1:
        return `${text.slice(0, i)}${r.pick([",", "]", "}", '"', ":", "\\", "/*x*/", "\n", " "])}${text.slice(i)}`;
      case 2:
        return `\ufeff${text}`;
      case 3:
        return text.replace(/\}\s*$/, ",}");
      case 4:
        return `${text}${r.pick(["", " ", "\n", "x", "{}", "\u0000"])}`;
      case 5:
        return text.slice(0, i) + text.slice(i + r.range(1, 8));
      default:
        return `${text.slice(0, i)}${r.pick(UNICODE)}${text.slice(i)}`;
    }
  }
}

export function mutateJsonBytes(rng: Rng, value: unknown, indent?: number): Uint8Array {
  const m = new JsonMutator(rng);
  let root = structuredClone(value) as Json;
  const treeOps = rng.range(rng.chance(0.2) ? 0 : 1, 3);
  for (let k = 0; k < treeOps; k++) root = m.mutateTree(root);
  let text = m.stringify(root, indent);
  if (rng.chance(0.25)) text = m.mutateText(text);
  let bytes: Uint8Array = enc.encode(text);
  if (rng.chance(0.1)) bytes = mutateBytes(rng, bytes);
  return bytes;
}

export const textEncoder = enc;

/**
 * Parser for the `answer_choices` column: a Python list of strings written as text, e.g.
 * `['advertising', "it's", 'a, b']`. Written by hand because no maintained npm package parses
 * Python literals, and `eval`/`JSON.parse` are wrong for them (single quotes, Python escapes).
 *
 * Accepted: `[]`, `None` or an empty cell (no choices), string items in single or double quotes
 * with Python's escapes (\\ \' \" \n \r \t \a \b \f \v \ooo \xhh \uhhhh \Uhhhhhhhh, backslash-
 * newline), `r`/`u` prefixes, adjacent-literal concatenation, a trailing comma, and whitespace.
 * Anything else (numbers, nested lists, triple quotes) is rejected with a ChoiceLiteralError
 * that says at which character and what was expected.
 */

import type { Where } from "./errors.js";

export class ChoiceLiteralError extends Error {
  /** 0-based character offset in the literal where parsing failed. */
  readonly offset: number;
  /** The 1-based character position in the literal (the caller adds file, row and column). */
  readonly where: Where;
  constructor(message: string, offset: number) {
    super(`${message} at character ${offset}`);
    this.name = "ChoiceLiteralError";
    this.offset = offset;
    this.where = { column: offset + 1 };
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  "\\": "\\",
  "'": "'",
  '"': '"',
  n: "\n",
  r: "\r",
  t: "\t",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
};

function isSpace(ch: string | undefined): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || ch === "\f" || ch === "\v";
}

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}
  peek(offset = 0): string | undefined {
    return this.text[this.pos + offset];
  }
  skipSpace(): void {
    while (isSpace(this.peek())) this.pos++;
  }
  done(): boolean {
    return this.pos >= this.text.length;
  }
  fail(what: string): never {
    const found = this.done() ? "end of text" : JSON.stringify(this.peek());
    throw new ChoiceLiteralError(`expected ${what}, found ${found}`, this.pos);
  }
}

function readHex(c: Cursor, digits: number, escapeStart: number): number {
  const hex = c.text.slice(c.pos, c.pos + digits);
  if (hex.length !== digits || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new ChoiceLiteralError(`truncated \\${c.text[c.pos - 1]} escape`, escapeStart);
  }
  c.pos += digits;
  return Number.parseInt(hex, 16);
}

/** One quoted string literal, cursor on its (optional) prefix or opening quote. */
function readStringLiteral(c: Cursor): string {
  let raw = false;
  // Python prefixes that still give a str: r, u (either case), rb/b would be bytes: rejected.
  while (/[rRuU]/.test(c.peek() ?? "")) {
    if (/[rR]/.test(c.peek()!)) raw = true;
    c.pos++;
  }
  const quote = c.peek();
  if (quote !== "'" && quote !== '"') c.fail("a quoted string");
  if (c.peek(1) === quote && c.peek(2) === quote) {
    throw new ChoiceLiteralError("triple-quoted strings are not supported", c.pos);
  }
  const start = c.pos;
  c.pos++;
  let out = "";
  for (;;) {
    const ch = c.peek();
    if (ch === undefined) throw new ChoiceLiteralError("unterminated string", start);
    if (ch === quote) {
      c.pos++;
      return out;
    }
    if (ch === "\n" || ch === "\r") {
      throw new ChoiceLiteralError("line break inside a single-quoted string", c.pos);
    }
    if (ch !== "\\") {
      out += ch;
      c.pos++;
      continue;
    }
    const escapeStart = c.pos;
    const next = c.peek(1);
    if (next === undefined) throw new ChoiceLiteralError("unterminated string", start);
    if (raw) {
      // In raw strings a backslash stays, but still protects the following quote.
      out += ch + next;
      c.pos += 2;
      continue;
    }
    c.pos += 2;
    if (next === "\n") continue; // line continuation
    if (next === "\r") {
      if (c.peek() === "\n") c.pos++;
      continue;
    }
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      out += simple;
    } else if (next === "x") {
      out += String.fromCodePoint(readHex(c, 2, escapeStart));
    } else if (next === "u") {
      out += String.fromCharCode(readHex(c, 4, escapeStart));
    } else if (next === "U") {
      const cp = readHex(c, 8, escapeStart);
      if (cp > 0x10ffff) throw new ChoiceLiteralError("\\U escape out of range", escapeStart);
      out += String.fromCodePoint(cp);
    } else if (next >= "0" && next <= "7") {
      let digits = next;
      while (digits.length < 3 && /[0-7]/.test(c.peek() ?? "")) digits += c.text[c.pos++];
      out += String.fromCodePoint(Number.parseInt(digits, 8));
    } else if (next === "N") {
      throw new ChoiceLiteralError("\\N{...} named escapes are not supported", escapeStart);
    } else {
      // Python keeps unknown escapes verbatim (with a warning).
      out += `\\${next}`;
    }
  }
}

/** Adjacent literals concatenate, as in Python: `'a' "b"` is `'ab'`. */
function readStringItem(c: Cursor): string {
  let value = readStringLiteral(c);
  for (;;) {
    const save = c.pos;
    c.skipSpace();
    const ch = c.peek();
    if (ch === "'" || ch === '"' || /[rRuU]/.test(ch ?? "")) {
      value += readStringLiteral(c);
    } else {
      c.pos = save;
      return value;
    }
  }
}

/**
 * Parses a Python list-of-strings literal into its strings. Empty text and `None` give `[]`.
 * @throws ChoiceLiteralError naming the character offset and what was expected.
 */
export function parseChoiceLiteral(text: string): string[] {
  const c = new Cursor(text);
  c.skipSpace();
  if (c.done()) return [];
  if (text.slice(c.pos).trimEnd() === "None") return [];
  if (c.peek() !== "[") c.fail('"[" (a Python list of strings)');
  c.pos++;
  const items: string[] = [];
  c.skipSpace();
  while (c.peek() !== "]") {
    if (c.done()) c.fail('a string or "]"');
    items.push(readStringItem(c));
    c.skipSpace();
    if (c.peek() === ",") {
      c.pos++;
      c.skipSpace();
    } else if (c.peek() !== "]") {
      c.fail('"," or "]"');
    }
  }
  c.pos++;
  c.skipSpace();
  if (!c.done()) c.fail("end of text after the list");
  return items;
}

/**
 * Writes strings the way Python's `repr(list_of_str)` does (used for round-trip tests and for
 * writing CSVs in the competition format).
 */
export function formatChoiceLiteral(choices: readonly string[]): string {
  return `[${choices.map(pythonStrRepr).join(", ")}]`;
}

/** Python 3 `repr(str)`: single quotes unless the text has ' and no ". */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (!isPythonPrintable(cp)) {
      if (cp < 0x100) out += `\\x${cp.toString(16).padStart(2, "0")}`;
      else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`;
      else out += `\\U${cp.toString(16).padStart(8, "0")}`;
    } else out += ch;
  }
  return out + quote;
}

/**
 * Approximates Python's str.isprintable for repr: control characters, separators other than
 * the ASCII space, unassigned/surrogate/private-use code points are escaped.
 */
function isPythonPrintable(cp: number): boolean {
  if (cp === 0x20) return true;
  const ch = String.fromCodePoint(cp);
  return !/[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u.test(ch);
}

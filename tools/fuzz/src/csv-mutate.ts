/** Mutations of competition CSV text and bytes: quotes, newlines, columns, BOMs, encodings. */
import { concat, mutateBytes, textEncoder } from "./mutate.js";
import type { Rng } from "./rng.js";

const CHOICES = [
  "None",
  "[]",
  "['a']",
  "['a', 'b']",
  "[\"a\", 'b']",
  "['a', 'a']",
  "['it\\'s', 'b']",
  "['a',]",
  "('a', 'b')",
  "[1, 2]",
  "[['a']]",
  `${"[".repeat(5000)}${"]".repeat(5000)}`,
  `['${"x".repeat(100_000)}']`,
  "['\\x00', '\\u263a', '\\N{BULLET}']",
  "['a' 'b']",
  "[None]",
  "['a\\nb']",
];

function quoteField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function utf16le(text: string, bom: boolean): Uint8Array {
  const out = new Uint8Array((bom ? 2 : 0) + text.length * 2);
  let at = 0;
  if (bom) {
    out[0] = 0xff;
    out[1] = 0xfe;
    at = 2;
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[at++] = c & 0xff;
    out[at++] = c >> 8;
  }
  return out;
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0) & 0xff);
}

/** A header plus a window of seed rows, as a list of records (fields unquoted). */
export function csvSeedRecords(rng: Rng, header: string[], rows: string[][]): string[][] {
  const start = rng.int(Math.max(1, rows.length - 20));
  const count = rng.range(0, 12);
  const out = [header.slice(), ...rows.slice(start, start + count).map((r) => r.slice())];
  if (rng.chance(0.15)) {
    // drop the target column
    const t = header.indexOf("target");
    if (t >= 0) for (const rec of out) rec.splice(t, 1);
  }
  if (rng.chance(0.1)) {
    // reorder columns
    const perm = header.map((_, i) => i).sort(() => rng.int(3) - 1);
    for (let k = 0; k < out.length; k++) out[k] = perm.map((i) => out[k]![i] ?? "");
  }
  return out;
}

function recordMutation(rng: Rng, records: string[][]): void {
  const header = records[0]!;
  const row = records.length > 1 ? records[rng.range(1, records.length - 1)]! : header;
  const col = rng.int(row.length);
  const colName = header[col] ?? "";
  switch (rng.int(10)) {
    case 0:
      row.splice(col, 1); // drop a field
      return;
    case 1:
      row.splice(col, 0, rng.pick(["", "x", "extra"])); // add a field
      return;
    case 2:
      row[col] = rng.pick(CHOICES);
      return;
    case 3:
      row[col] = rng.pick([
        "multiple_choice",
        "generation",
        "MULTIPLE_CHOICE",
        " generation ",
        "",
        "other",
      ]);
      return;
    case 4:
      row[col] = rng.pick(["", " ", "0", "-1", "1.5", "99", "abc", "None", "\u00a0", "０"]);
      return;
    case 5:
      if (records.length > 1) records.push(row.slice()); // duplicate row (repeated id)
      return;
    case 6:
      header[rng.int(header.length)] = rng.pick([
        "",
        " id",
        "ID",
        "id ",
        "\ufeffid",
        "input",
        "target",
        "x",
      ]);
      return;
    case 7:
      row[col] =
        `${row[col] ?? ""}${rng.pick(["\n", "\r\n", "\r", '"', '""', ",", "\u2028", "\u0000", "😀", "e\u0301", "\\"])}`;
      return;
    case 8:
      if (colName === "id" || rng.chance(0.5)) row[col] = "x".repeat(rng.pick([1000, 100_000]));
      else records.splice(1, 0, ...Array.from({ length: rng.pick([50, 500]) }, () => row.slice()));
      return;
    default:
      records.splice(rng.range(1, records.length), 0, []); // empty record
  }
}

function serialize(rng: Rng, records: string[][]): string {
  const eol = rng.pick(["\n", "\n", "\r\n", "\r"]);
  const quoteAll = rng.chance(0.3);
  const lines = records.map((rec) =>
    rec
      .map((f) => (quoteAll || /[",\r\n]/.test(f) || f !== f.trim() ? quoteField(f) : f))
      .join(","),
  );
  return lines.join(eol) + (rng.chance(0.7) ? eol : "");
}

function textMutation(rng: Rng, text: string): string {
  const i = rng.int(text.length + 1);
  switch (rng.int(8)) {
    case 0:
      return `${text.slice(0, i)}"${text.slice(i)}`; // stray quote
    case 1:
      return text.slice(0, i) + text.slice(i + 1); // drop a char (often a quote/comma)
    case 2:
      return `${text.slice(0, i)}${rng.pick(["\n", "\r", "\r\n", "\n\n"])}${text.slice(i)}`;
    case 3:
      return `${text.slice(0, i)},${text.slice(i)}`;
    case 4:
      return `\ufeff${rng.chance(0.3) ? "\ufeff" : ""}${text}`;
    case 5:
      return `${text.slice(0, i)}\ufeff${text.slice(i)}`;
    case 6:
      return text.slice(0, i); // truncation (often mid-quote)
    default:
      return `${text.slice(0, i)}${rng.pick(['"x"y', '""', '"\n"', "\u0000", "\t", " "])}${text.slice(i)}`;
  }
}

export function mutateCsv(rng: Rng, header: string[], rows: string[][]): Uint8Array {
  const records = csvSeedRecords(rng, header, rows);
  for (let k = rng.range(0, 3); k > 0; k--) recordMutation(rng, records);
  let text = serialize(rng, records);
  for (let k = rng.chance(0.5) ? rng.range(1, 2) : 0; k > 0; k--) text = textMutation(rng, text);
  switch (rng.int(12)) {
    case 0:
      return utf16le(text, rng.chance(0.7));
    case 1:
      return latin1(text.replace(/a/g, "\u00e9"));
    case 2:
      return concat([Uint8Array.of(0xef, 0xbb, 0xbf), textEncoder.encode(text)]);
    case 3:
    case 4:
      return mutateBytes(rng, textEncoder.encode(text));
    default:
      return textEncoder.encode(text);
  }
}

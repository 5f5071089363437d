import { constants, type Stats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { CsvError, parse } from "csv-parse/sync";
import { ChoiceLiteralError, parseChoiceLiteral } from "./choice-literal.js";
import { CsvValidationError, type RowIssue, formatRowIssue } from "./errors.js";
import { decodeUtf8Strict } from "./utf8.js";

export const EVAL_TYPES = ["multiple_choice", "generation"] as const;
export type EvalType = (typeof EVAL_TYPES)[number];

export const REQUIRED_COLUMNS = ["id", "input", "eval_type", "answer_choices"] as const;

/** One usable row of a competition CSV. */
export interface CompetitionRow {
  id: string;
  input: string;
  evalType: EvalType;
  /** Parsed answer_choices; empty for generation rows. */
  choices: string[];
  /** The label when the file has a `target` column (choice index for multiple choice). */
  target?: string;
  /** The row's task when the file has a `task` column (labelled sets mixing tasks); metrics group by it. */
  task?: string;
  /** 1-based data row number (header not counted). */
  row: number;
  /** 1-based line where the row starts. */
  line: number;
}

/** A row that failed validation under the skip-bad-rows policy: answered with a placeholder. */
export interface BadRow {
  id: string;
  row: number;
  line: number;
  /** The eval type when it was readable, to choose a fitting placeholder. */
  evalType?: EvalType;
  issues: RowIssue[];
}

export type DatasetEntry = { kind: "ok"; row: CompetitionRow } | { kind: "bad"; row: BadRow };

export interface CompetitionDataset {
  file: string;
  hasTarget: boolean;
  /**
   * Every data row that has an id, in file order (bad ones only with skipBadRows); each id once:
   * a repeated id is reported as an issue and only its first row is kept.
   */
  entries: DatasetEntry[];
  /** Every issue found (also those of rows dropped because they had no id). */
  issues: RowIssue[];
}

export interface ReadCsvOptions {
  /** Keep going past invalid rows: warn, and mark them for a placeholder prediction. */
  skipBadRows?: boolean;
  /** Called once per issue when skipBadRows is on (default: console.warn). */
  onWarning?: (message: string) => void;
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  return "not a plain file";
}

/**
 * The bytes of a regular file (symlinks followed). Anything else is refused before it is read:
 * open(2) on a FIFO blocks until a writer comes, and a device can stream without end. The
 * open uses O_NONBLOCK (no effect on regular files), so a FIFO swapped in after the stat cannot
 * block either.
 */
async function readRegularFile(file: string): Promise<Buffer> {
  const before = await stat(file);
  if (!before.isFile()) throw new Error(`not a regular file (${fileKind(before)})`);
  const handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const after = await handle.stat();
    if (!after.isFile()) throw new Error(`not a regular file (${fileKind(after)})`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Reads and validates a competition CSV file. */
export async function readCompetitionCsv(
  file: string,
  options: ReadCsvOptions = {},
): Promise<CompetitionDataset> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(file);
  } catch (err) {
    throw new CsvValidationError(
      file,
      [],
      `${file}: cannot read the CSV: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // Strict: a lenient decode would turn invalid bytes into U+FFFD and silently change prompts.
  const decoded = decodeUtf8Strict(bytes);
  if (!decoded.ok) {
    throw new CsvValidationError(
      file,
      [],
      `${file}: not valid UTF-8: invalid byte sequence at byte ${decoded.offset} (line ${decoded.line}); save the file as UTF-8`,
      { where: { line: decoded.line } },
    );
  }
  return parseCompetitionCsv(decoded.text, file, options);
}

/** 1-based start line of a record, from csv-parse's end line and the record's raw text. */
function startLine(endLine: number, raw: string): number {
  let newlines = 0;
  for (const ch of raw) if (ch === "\n") newlines++;
  if (raw.endsWith("\n")) newlines--;
  return endLine - newlines;
}

interface ParsedRecord {
  fields: string[];
  line: number;
}

function parseRecords(text: string, file: string): ParsedRecord[] {
  try {
    const out = parse(text, {
      bom: true,
      info: true,
      raw: true,
      relax_column_count: true, // column-count problems are reported per row below
      skip_empty_lines: true,
    }) as unknown as Array<{ record: string[]; raw: string; info: { lines: number } }>;
    return out.map((r) => ({ fields: r.record, line: startLine(r.info.lines, r.raw) }));
  } catch (err) {
    if (err instanceof CsvError) {
      const line = (err as CsvError & { lines?: number }).lines;
      throw new CsvValidationError(
        file,
        [],
        `${file}: not valid CSV${line !== undefined ? ` (near line ${line})` : ""}: ${err.message}`,
        line !== undefined ? { where: { line } } : {},
      );
    }
    throw err;
  }
}

/** Parses and validates competition CSV text; `file` is only used in messages. */
export function parseCompetitionCsv(
  text: string,
  file: string,
  options: ReadCsvOptions = {},
): CompetitionDataset {
  const records = parseRecords(text, file);
  const header = records[0];
  if (header === undefined) {
    throw new CsvValidationError(file, [], `${file}: empty file, expected a header row`);
  }
  const columns = header.fields.map((c) => c.trim());
  const missing = REQUIRED_COLUMNS.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw new CsvValidationError(
      file,
      [],
      `${file}: header lacks column${missing.length > 1 ? "s" : ""} ${missing.map((m) => `"${m}"`).join(", ")}; expected id,input,eval_type,answer_choices[,target], found ${columns.join(",")}`,
      { where: { line: header.line } },
    );
  }
  const index = (name: string) => columns.indexOf(name);
  const col = {
    id: index("id"),
    input: index("input"),
    evalType: index("eval_type"),
    choices: index("answer_choices"),
    target: index("target"),
    task: index("task"),
  };
  const hasTarget = col.target >= 0;

  const entries: DatasetEntry[] = [];
  const issues: RowIssue[] = [];
  const firstRowOfId = new Map<string, number>();
  // Issues of rows that are dropped (a repeated id): the output must hold each id once.
  const droppedIssues = new Set<RowIssue>();

  records.slice(1).forEach((rec, i) => {
    const row = i + 1;
    const { line } = rec;
    const field = (c: number) => (c >= 0 ? rec.fields[c] : undefined);
    const id = (field(col.id) ?? "").trim();
    const rowIssues: RowIssue[] = [];
    const issue = (column: string, message: string) =>
      rowIssues.push({ row, line, column, ...(id !== "" ? { id } : {}), message });

    if (rec.fields.length !== columns.length) {
      issue("(row)", `expected ${columns.length} fields, found ${rec.fields.length}`);
    }
    let duplicate = false;
    if (id === "") {
      issue("id", "missing id");
    } else {
      const first = firstRowOfId.get(id);
      if (first !== undefined) {
        duplicate = true;
        issue("id", `duplicate id, first seen on row ${first}`);
      } else firstRowOfId.set(id, row);
    }
    const input = field(col.input) ?? "";
    if (input.trim() === "") issue("input", "empty input");

    const evalTypeText = (field(col.evalType) ?? "").trim();
    const evalType = (EVAL_TYPES as readonly string[]).includes(evalTypeText)
      ? (evalTypeText as EvalType)
      : undefined;
    if (evalType === undefined) {
      issue(
        "eval_type",
        `unknown eval_type ${JSON.stringify(evalTypeText)}, expected one of ${EVAL_TYPES.join(", ")}`,
      );
    }

    let choices: string[] = [];
    const choicesText = field(col.choices) ?? "";
    try {
      choices = parseChoiceLiteral(choicesText);
    } catch (err) {
      if (!(err instanceof ChoiceLiteralError)) throw err;
      issue("answer_choices", `not a Python list of strings: ${err.message}`);
    }
    const choicesParsed = rowIssues.every((r) => r.column !== "answer_choices");
    if (evalType === "multiple_choice" && choicesParsed && choices.length < 2) {
      issue(
        "answer_choices",
        `multiple_choice row needs at least 2 choices, found ${choices.length}`,
      );
    }

    const target = hasTarget ? (field(col.target) ?? "") : undefined;
    if (evalType === "multiple_choice" && target !== undefined && target.trim() !== "") {
      const t = target.trim();
      if (!/^\d+$/.test(t) || (choicesParsed && Number(t) >= choices.length)) {
        issue(
          "target",
          `expected a choice index in [0, ${choices.length}), found ${JSON.stringify(t)}`,
        );
      }
    }

    issues.push(...rowIssues);
    if (duplicate) {
      // Only the first row of an id is answered; a second prediction would repeat the id.
      for (const i of rowIssues) droppedIssues.add(i);
    } else if (rowIssues.length === 0 && evalType !== undefined) {
      const ok: CompetitionRow = {
        id,
        input,
        evalType,
        choices: evalType === "generation" ? [] : choices,
        row,
        line,
      };
      if (target !== undefined) ok.target = target;
      const task = field(col.task)?.trim();
      if (task) ok.task = task;
      entries.push({ kind: "ok", row: ok });
    } else if (id !== "") {
      // Without an id there is nothing to answer; the issue is still reported.
      entries.push({
        kind: "bad",
        row: { id, row, line, ...(evalType !== undefined ? { evalType } : {}), issues: rowIssues },
      });
    }
  });

  if (issues.length > 0) {
    if (!options.skipBadRows) throw new CsvValidationError(file, issues);
    const warn = options.onWarning ?? ((m: string) => console.warn(m));
    for (const i of issues) {
      const what = droppedIssues.has(i)
        ? "row skipped: only the first row of an id is answered"
        : i.id !== undefined
          ? "answered with a placeholder"
          : "row skipped: no id to answer";
      warn(`warning: ${formatRowIssue(file, i)} (${what})`);
    }
  }
  return { file, hasTarget, entries, issues };
}

/**
 * What an error is about, whichever parts apply: the toolkit-wide convention. Defined
 * here and in the other packages that depend on nothing (@merge/lora, @merge/tensor-io,
 * @merge/eval), so they stay independent; the others re-export one of these. Set next to the message.
 */
export interface Where {
  file?: string;
  tensor?: string;
  module?: string;
  /** 1-based data row (CSV). */
  row?: number;
  /** 1-based line in the file. */
  line?: number;
  /** A column name (CSV) or a 1-based character position. */
  column?: string | number;
  /** A config field, e.g. "runtime.dtype". */
  field?: string;
  /** A row id. */
  id?: string;
}

/** One problem with one data row of a competition CSV. */
export interface RowIssue {
  /** 1-based data row number (the header is not counted). */
  row: number;
  /** 1-based line in the file where the row starts (rows may span several lines). */
  line: number;
  /** The column at fault, e.g. "answer_choices". */
  column: string;
  /** The row's id when it has one. */
  id?: string;
  message: string;
}

export function formatRowIssue(file: string, issue: RowIssue): string {
  const id = issue.id !== undefined && issue.id !== "" ? ` (id ${JSON.stringify(issue.id)})` : "";
  return `${file}: row ${issue.row}${id}, line ${issue.line}, column "${issue.column}": ${issue.message}`;
}

/** A competition CSV that cannot be used: unreadable, a bad header, unparseable CSV, or invalid rows. */
export class CsvValidationError extends Error {
  readonly file: string;
  readonly issues: readonly RowIssue[];
  /** The file and, when rows are at fault, the first bad row's row, line, column and id. */
  readonly where: Where;
  constructor(
    file: string,
    issues: readonly RowIssue[],
    headline?: string,
    options?: { cause?: unknown; where?: Omit<Where, "file"> },
  ) {
    const lines = issues.slice(0, 20).map((i) => `  ${formatRowIssue(file, i)}`);
    if (issues.length > 20) lines.push(`  … and ${issues.length - 20} more`);
    const head =
      headline ??
      `${file}: ${issues.length} invalid row${issues.length === 1 ? "" : "s"} (use --skip-bad-rows to answer them with placeholders)`;
    super(
      [head, ...lines].join("\n"),
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = "CsvValidationError";
    this.file = file;
    this.issues = issues;
    const first = issues[0];
    this.where =
      first === undefined
        ? { file, ...options?.where }
        : {
            file,
            row: first.row,
            line: first.line,
            column: first.column,
            ...(first.id !== undefined && first.id !== "" ? { id: first.id } : {}),
          };
  }
}

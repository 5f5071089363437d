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
  constructor(
    file: string,
    issues: readonly RowIssue[],
    headline?: string,
    options?: { cause?: unknown },
  ) {
    const lines = issues.slice(0, 20).map((i) => `  ${formatRowIssue(file, i)}`);
    if (issues.length > 20) lines.push(`  … and ${issues.length - 20} more`);
    const head =
      headline ??
      `${file}: ${issues.length} invalid row${issues.length === 1 ? "" : "s"} (use --skip-bad-rows to answer them with placeholders)`;
    super([head, ...lines].join("\n"), options);
    this.name = "CsvValidationError";
    this.file = file;
    this.issues = issues;
  }
}

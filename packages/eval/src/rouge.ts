/**
 * ROUGE-1/2/L as computed by Google's `rouge_score` package (the one Hugging Face `evaluate`
 * wraps), without stemming (its default). Written by hand because the npm ROUGE packages
 * tokenize and weight differently; parity with rouge_score is tested on fixtures that
 * tools/fixtures/eval/make_rouge_fixtures.py generates with the Python package.
 */

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge_score's default tokenizer: lowercase, non-[a-z0-9] runs become spaces, split. */
export function rougeTokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, " ")
    .split(/\s+/)
    .filter((t) => /^[a-z0-9]+$/.test(t));
}

function fmeasure(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    // \u0001 cannot occur in a token (tokens are [a-z0-9]+).
    const key = tokens.slice(i, i + n).join("\u0001");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** ROUGE-N between token lists (target = reference, prediction = candidate). */
export function rougeNTokens(
  target: readonly string[],
  prediction: readonly string[],
  n: number,
): RougeScore {
  const t = ngramCounts(target, n);
  const p = ngramCounts(prediction, n);
  let overlap = 0;
  for (const [k, c] of p) overlap += Math.min(c, t.get(k) ?? 0);
  let targetCount = 0;
  for (const c of t.values()) targetCount += c;
  let predictionCount = 0;
  for (const c of p.values()) predictionCount += c;
  const precision = overlap / Math.max(predictionCount, 1);
  const recall = overlap / Math.max(targetCount, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Length of the longest common subsequence, O(|a|·|b|) time, O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** ROUGE-L (sentence level, no summary splitting) between token lists. */
export function rougeLTokens(target: readonly string[], prediction: readonly string[]): RougeScore {
  if (target.length === 0 || prediction.length === 0) {
    return { precision: 0, recall: 0, fmeasure: 0 };
  }
  const lcs = lcsLength(target, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

export interface RougeScores {
  rouge1: RougeScore;
  rouge2: RougeScore;
  rougeL: RougeScore;
}

/** rouge_score's `RougeScorer(["rouge1","rouge2","rougeL"]).score(target, prediction)`. */
export function rougeScores(target: string, prediction: string): RougeScores {
  const t = rougeTokenize(target);
  const p = rougeTokenize(prediction);
  return {
    rouge1: rougeNTokens(t, p, 1),
    rouge2: rougeNTokens(t, p, 2),
    rougeL: rougeLTokens(t, p),
  };
}

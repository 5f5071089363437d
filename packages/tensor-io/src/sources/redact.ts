/**
 * Credentials must never reach an error message: a Hub (or proxy) error body may echo the
 * Authorization header, and the library copies the body into its error.
 */

const REDACTED = "[redacted]";

// "Bearer <anything up to a space or quote>", Hugging Face user tokens (hf_...) and legacy
// organisation tokens (api_org_...).
const PATTERNS = [
  /\b(Bearer)\s+(?!\[redacted\])[^\s"'`,;)]+/gi,
  /\bhf_[A-Za-z0-9_-]{6,}/g,
  /\bapi_org_[A-Za-z0-9_-]{6,}/g,
];

/**
 * `text` with Bearer credentials, hf_ / api_org_ tokens, HF_TOKEN's value and every value in
 * `secrets` (the configured token) replaced by "[redacted]".
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  const values = [...secrets, process.env.HF_TOKEN]
    .filter((s): s is string => typeof s === "string" && s.length >= 4)
    .sort((a, b) => b.length - a.length);
  for (const value of values) out = out.split(value).join(REDACTED);
  out = out.replace(PATTERNS[0]!, `$1 ${REDACTED}`);
  for (const pattern of PATTERNS.slice(1)) out = out.replace(pattern, REDACTED);
  return out;
}

/**
 * A stand-in for a library error to keep as a SourceError's `cause`: same name, message and
 * status redacted, and without the response body (`data`) or headers it may carry.
 */
export function redactedCause(cause: unknown, secrets: readonly (string | undefined)[]): Error {
  const original = cause instanceof Error ? cause : new Error(String(cause));
  const copy = new Error(redactSecrets(original.message, secrets));
  copy.name = original.name;
  copy.stack = redactSecrets(original.stack ?? "", secrets);
  const { statusCode, url, requestId } = original as {
    statusCode?: unknown;
    url?: unknown;
    requestId?: unknown;
  };
  if (typeof statusCode === "number") Object.assign(copy, { statusCode });
  if (typeof url === "string") Object.assign(copy, { url: redactSecrets(url, secrets) });
  if (typeof requestId === "string") Object.assign(copy, { requestId });
  return copy;
}

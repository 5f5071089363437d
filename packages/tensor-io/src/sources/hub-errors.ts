/**
 * Classifying what went wrong talking to the Hub: the network (no answer at all, so the cache may
 * stand in, as huggingface_hub and transformers do) versus an answer from the server (401/403:
 * say how to log in; anything else: report it).
 */
import type { HubToken } from "./hub-auth.js";

/** Errno and undici codes of a request that got no answer: DNS, refused, reset, unreachable, timeout. */
const NETWORK_CODES = new Set([
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_FAIL",
  "EAI_NODATA",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENETRESET",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);

/** Names of timeout errors (AbortSignal.timeout, undici). A plain AbortError is a cancel, not a failure. */
const TIMEOUT_NAMES = new Set(["TimeoutError", "ConnectTimeoutError", "HeadersTimeoutError"]);

/**
 * Server answers that mean the Hub is down or a gateway could not reach it (huggingface_hub falls
 * back to the cache on these too). 401/403/404 and other 4xx are real answers and never fall back.
 */
const UNAVAILABLE_STATUS = new Set([502, 503, 504]);

function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The error and everything below it: `cause` chains and AggregateError members (happy eyeballs). */
function* chain(error: unknown, depth = 0): Generator<unknown> {
  if (error === null || error === undefined || depth > 8) return;
  yield error;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) yield* chain(inner, depth + 1);
  }
  if (typeof error === "object" && "cause" in error) yield* chain(error.cause, depth + 1);
}

/**
 * A short description of why the Hub could not be reached ("getaddrinfo ENOTFOUND huggingface.co",
 * "HTTP 503"), or undefined if `error` is not a network failure.
 */
export function networkFailure(error: unknown): string | undefined {
  const status = statusOf(error);
  if (status !== undefined) return UNAVAILABLE_STATUS.has(status) ? `HTTP ${status}` : undefined;
  for (const e of chain(error)) {
    const code = (e as { code?: unknown }).code;
    const name = (e as { name?: unknown }).name;
    if ((typeof code === "string" && NETWORK_CODES.has(code)) || TIMEOUT_NAMES.has(String(name))) {
      const message = e instanceof Error && e.message !== "" ? e.message : String(code ?? name);
      return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
    }
  }
  return undefined;
}

/** The repo's page on the Hub, without any credentials a custom endpoint URL may carry. */
export function repoPage(hubUrl: string | undefined, repo: string): string {
  const base = hubUrl || "https://huggingface.co";
  try {
    const url = new URL(base);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    return `${url.toString().replace(/\/+$/, "")}/${repo}`;
  } catch {
    return `https://huggingface.co/${repo}`;
  }
}

/**
 * For a 401/403 answer: what to do about it, naming the repo. The Hub answers 401 to a gated or
 * private repo without a (valid) token, and 403 when the token is valid but has no access yet
 * (gated terms not accepted, or a fine-grained token without read access to the repo).
 */
export function authHint(
  error: unknown,
  repo: string,
  hubUrl: string | undefined,
  token: HubToken | undefined,
): string | undefined {
  const status = statusOf(error);
  if (status !== 401 && status !== 403) return undefined;
  const sent =
    token === undefined
      ? "no token was sent"
      : `the token from ${token.from} was ${status === 401 ? "refused" : "sent but has no access"}`;
  return (
    `${repo} is gated or private, or needs a login (HTTP ${status}; ${sent}): ` +
    `if it is gated, accept the model's terms on its Hub page ${repoPage(hubUrl, repo)} ` +
    "while logged in; then log in with `hf auth login` or set HF_TOKEN to a token with read " +
    `access to ${repo}`
  );
}

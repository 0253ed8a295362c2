/**
 * Upstream failures, classified once by each provider's errors.ts so the gateway can decide: retry (connection,
 * timeout, server, rate_limited), fail over without retrying (out_of_credits, bad_response), or answer the client
 * at once (bad_request, auth, not_found: the request or the configuration is wrong, another try would fail alike).
 */

export type UpstreamFailure =
  | "bad_request"
  | "auth"
  | "not_found"
  | "out_of_credits"
  | "rate_limited"
  | "server"
  | "connection"
  | "timeout"
  | "bad_response"
  | "circuit_open";

const RETRYABLE: ReadonlySet<UpstreamFailure> = new Set(["connection", "timeout", "server", "rate_limited"]);
const FINAL: ReadonlySet<UpstreamFailure> = new Set(["bad_request", "auth", "not_found"]);

export class UpstreamError extends Error {
  readonly kind: UpstreamFailure;
  /** The upstream's HTTP status, when it answered. */
  readonly status?: number;
  /** The upstream's Retry-After, in ms. */
  readonly retryAfterMs?: number;
  /** The request field the upstream named, in Easel's spelling. */
  readonly param?: string;

  constructor(kind: UpstreamFailure, message: string, opts: { status?: number; retryAfterMs?: number; param?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "UpstreamError";
    this.kind = kind;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.param = opts.param;
  }

  /** Worth another try against the same provider. */
  get retryable(): boolean {
    return RETRYABLE.has(this.kind);
  }

  /** Another target may succeed (everything but the request's or the configuration's own faults). */
  get failsOver(): boolean {
    return !FINAL.has(this.kind);
  }
}

/** Retry-After as seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** What an error body says, in whichever of the usual shapes it comes. */
export interface ErrorBody {
  message?: string;
  code?: string;
  type?: string;
  param?: string;
}

/** Reads `{error: {message, code, type, param}}` (OpenAI, Monica), `{error: "..", code, param}` (Playground, Segmind), `{message}`. */
export function readErrorBody(text: string): ErrorBody {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return text.trim() ? { message: text.trim().slice(0, 500) } : {};
  }
  if (typeof v !== "object" || v === null) return {};
  const o = v as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === "string" && x !== "" ? x : undefined);
  if (typeof o.error === "object" && o.error !== null) {
    const e = o.error as Record<string, unknown>;
    return { message: str(e.message), code: str(e.code), type: str(e.type), param: str(e.param) };
  }
  return { message: str(o.error) ?? str(o.message) ?? str(o.detail), code: str(o.code), param: str(o.param) };
}

/** The classification every provider starts from: 400/422 bad request, 401/403 auth, 404 not found, 402 credits, 408/429/5xx retry. */
export function classifyStatus(status: number): UpstreamFailure {
  if (status === 401 || status === 403) return "auth";
  if (status === 404) return "not_found";
  if (status === 402) return "out_of_credits";
  if (status === 429) return "rate_limited";
  if (status === 408 || status >= 500) return "server";
  if (status >= 400) return "bad_request";
  return "bad_response";
}

/** Removes a secret from text that came from elsewhere (an upstream's error message may quote the key it was sent). */
export function redact(text: string, secret: string | undefined): string {
  return secret && secret.length >= 4 ? text.split(secret).join("[redacted]") : text;
}

/** An upstream's non-2xx answer as an UpstreamError: its status classified (unless the provider knows better), its message kept. */
export function httpError(
  provider: string,
  status: number,
  body: ErrorBody,
  opts: { kind?: UpstreamFailure; retryAfterMs?: number; param?: string } = {},
): UpstreamError {
  const said = body.message ? `: ${body.message}` : "";
  return new UpstreamError(opts.kind ?? classifyStatus(status), `provider "${provider}" answered ${status}${said}`, {
    status,
    retryAfterMs: opts.retryAfterMs,
    param: opts.param,
  });
}

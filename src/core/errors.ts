/**
 * The one error catalog. Every failure Easel reports carries one of these codes; dialects only reshape the body
 * (and, where their provider does, pick another status) — they never invent codes.
 */
export const ERROR_CATALOG = {
  E_INPUT_INVALID: { status: 400, retryable: false },
  E_NOT_SUPPORTED: { status: 400, retryable: false },
  E_PROMPT_UNSAFE: { status: 400, retryable: false },
  E_AUTH_MISSING: { status: 401, retryable: false },
  E_AUTH_INVALID: { status: 401, retryable: false },
  E_CREDITS_INSUFFICIENT: { status: 402, retryable: false },
  E_FORBIDDEN: { status: 403, retryable: false },
  E_NOT_FOUND: { status: 404, retryable: false },
  E_MODEL_NOT_FOUND: { status: 404, retryable: false },
  E_METHOD_NOT_ALLOWED: { status: 405, retryable: false },
  E_REQUEST_TIMEOUT: { status: 408, retryable: false },
  E_IDEMPOTENCY_CONFLICT: { status: 409, retryable: false },
  E_PAYLOAD_TOO_LARGE: { status: 413, retryable: false },
  E_HEADERS_TOO_LARGE: { status: 431, retryable: false },
  E_RATE_LIMITED: { status: 429, retryable: true },
  E_CANCELLED: { status: 499, retryable: false },
  E_CHECKPOINT_INVALID: { status: 500, retryable: false },
  E_ENGINE_FAILED: { status: 500, retryable: false },
  E_INTERNAL: { status: 500, retryable: false },
  E_UPSTREAM_FAILED: { status: 502, retryable: true },
  E_OVERLOADED: { status: 503, retryable: true },
  E_TIMEOUT: { status: 504, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export interface EaselErrorOptions {
  /** The request field the error is about, as the client spelled it. */
  param?: string;
  /** Extra machine-readable facts (allowed range, retry-after seconds, ...). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class EaselError extends Error {
  readonly code: ErrorCode;
  readonly param?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: EaselErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "EaselError";
    this.code = code;
    this.param = opts.param;
    this.details = opts.details;
  }

  get status(): number {
    return ERROR_CATALOG[this.code].status;
  }

  get retryable(): boolean {
    return ERROR_CATALOG[this.code].retryable;
  }
}

export function isEaselError(e: unknown): e is EaselError {
  return e instanceof EaselError;
}

/** Converts anything thrown into an EaselError; unknown errors become E_INTERNAL without leaking internals. */
export function toEaselError(e: unknown): EaselError {
  if (e instanceof EaselError) return e;
  if (e instanceof Error && e.name === "AbortError") return new EaselError("E_CANCELLED", "The request was cancelled.");
  return new EaselError("E_INTERNAL", "Internal error.", { cause: e });
}

/** Shorthand for the most common error: a field outside what is allowed. */
export function invalidInput(param: string, message: string, details?: Record<string, unknown>): EaselError {
  return new EaselError("E_INPUT_INVALID", message, { param, details });
}

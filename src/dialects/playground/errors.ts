/**
 * Playground error bodies: `{error: message, code: NAME, param}` with the page's upper-case code names
 * (PROMPT_UNSAFE is the one it documents; the others follow the same style). Statuses come from the catalog.
 */
import type { EaselError, ErrorCode } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";

export const PLAYGROUND_CODES: Record<ErrorCode, string> = {
  E_INPUT_INVALID: "INVALID_PARAMETER",
  E_NOT_SUPPORTED: "NOT_SUPPORTED",
  E_PROMPT_UNSAFE: "PROMPT_UNSAFE",
  E_AUTH_MISSING: "UNAUTHORIZED",
  E_AUTH_INVALID: "UNAUTHORIZED",
  E_CREDITS_INSUFFICIENT: "INSUFFICIENT_CREDITS",
  E_FORBIDDEN: "FORBIDDEN",
  E_NOT_FOUND: "NOT_FOUND",
  E_MODEL_NOT_FOUND: "MODEL_NOT_AVAILABLE",
  E_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
  E_REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
  E_IDEMPOTENCY_CONFLICT: "IDEMPOTENCY_CONFLICT",
  E_PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  E_HEADERS_TOO_LARGE: "HEADERS_TOO_LARGE",
  E_RATE_LIMITED: "RATE_LIMITED",
  E_CANCELLED: "CANCELLED",
  E_CHECKPOINT_INVALID: "INTERNAL_ERROR",
  E_ENGINE_FAILED: "INTERNAL_ERROR",
  E_INTERNAL: "INTERNAL_ERROR",
  E_UPSTREAM_FAILED: "UPSTREAM_ERROR",
  E_OVERLOADED: "OVERLOADED",
  E_TIMEOUT: "TIMEOUT",
};

export function playgroundError(e: EaselError): ErrorReply {
  return {
    status: e.status,
    body: { error: e.message, code: PLAYGROUND_CODES[e.code], ...(e.param ? { param: e.param } : {}) },
    headers: { "x-easel-error-code": e.code },
  };
}

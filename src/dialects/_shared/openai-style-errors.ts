/**
 * The OpenAI error body `{error: {message, type, param, code}}`, shared by the OpenAI dialect and Monica (whose
 * error table mirrors OpenAI's: 401 for keys, 429 both for rate limits and for an exhausted balance).
 */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "./dialect.ts";

interface Shape {
  status: number;
  type: string;
  code: string | null;
}

function shape(e: EaselError): Shape {
  const reason = typeof e.details?.reason === "string" ? e.details.reason : null;
  switch (e.code) {
    case "E_INPUT_INVALID":
      return { status: 400, type: "invalid_request_error", code: reason ?? "invalid_value" };
    case "E_NOT_SUPPORTED":
      return { status: 400, type: "invalid_request_error", code: "unsupported_value" };
    case "E_PROMPT_UNSAFE":
      return { status: 400, type: "invalid_request_error", code: "content_policy_violation" };
    case "E_AUTH_MISSING":
      return { status: 401, type: "invalid_request_error", code: null };
    case "E_AUTH_INVALID":
      return { status: 401, type: "invalid_request_error", code: "invalid_api_key" };
    case "E_CREDITS_INSUFFICIENT":
      return { status: 429, type: "insufficient_quota", code: "insufficient_quota" };
    case "E_FORBIDDEN":
      return { status: 403, type: "invalid_request_error", code: "forbidden" };
    case "E_MODEL_NOT_FOUND":
      return { status: 404, type: "invalid_request_error", code: "model_not_found" };
    case "E_NOT_FOUND":
      return { status: 404, type: "invalid_request_error", code: null };
    case "E_METHOD_NOT_ALLOWED":
      return { status: 405, type: "invalid_request_error", code: "method_not_allowed" };
    case "E_REQUEST_TIMEOUT":
      return { status: 408, type: "invalid_request_error", code: "request_timeout" };
    case "E_IDEMPOTENCY_CONFLICT":
      return { status: 409, type: "invalid_request_error", code: "idempotency_conflict" };
    case "E_PAYLOAD_TOO_LARGE":
      return { status: 413, type: "invalid_request_error", code: "payload_too_large" };
    case "E_HEADERS_TOO_LARGE":
      return { status: 431, type: "invalid_request_error", code: "headers_too_large" };
    case "E_RATE_LIMITED":
      return { status: 429, type: "requests", code: "rate_limit_exceeded" };
    case "E_CANCELLED":
      return { status: 499, type: "invalid_request_error", code: "cancelled" };
    case "E_OVERLOADED":
      return { status: 503, type: "server_error", code: "engine_overloaded" };
    case "E_TIMEOUT":
      return { status: 504, type: "server_error", code: "timeout" };
    case "E_UPSTREAM_FAILED":
      return { status: 502, type: "server_error", code: "upstream_failed" };
    default:
      return { status: Math.max(e.status, 500), type: "server_error", code: "server_error" };
  }
}

export function openAiStyleError(e: EaselError): ErrorReply {
  const s = shape(e);
  const headers: Record<string, string> = { "x-easel-error-code": e.code };
  const retryAfter = e.details?.retryAfterSeconds;
  if (typeof retryAfter === "number") headers["retry-after"] = String(Math.ceil(retryAfter));
  return {
    status: s.status,
    body: { error: { message: e.message, type: s.type, param: e.param ?? null, code: s.code } },
    headers,
  };
}

/**
 * Segmind error bodies `{error: message}` (plus Easel's `code` and `param`) with the statuses its page lists:
 * 401 bad key, 404 unknown URL or model, 405 wrong method, 406 not enough credits, 500 server error.
 * Input errors, which the page does not list, are 400.
 */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";

function status(e: EaselError): number {
  switch (e.code) {
    case "E_AUTH_MISSING":
    case "E_AUTH_INVALID":
      return 401;
    case "E_CREDITS_INSUFFICIENT":
      return 406;
    case "E_NOT_FOUND":
    case "E_MODEL_NOT_FOUND":
      return 404;
    case "E_METHOD_NOT_ALLOWED":
      return 405;
    case "E_INPUT_INVALID":
    case "E_NOT_SUPPORTED":
    case "E_PROMPT_UNSAFE":
      return 400;
    default:
      return Math.min(e.status, 500);
  }
}

export function segmindError(e: EaselError): ErrorReply {
  return {
    status: status(e),
    body: { error: e.message, code: e.code, ...(e.param ? { param: e.param } : {}) },
    headers: { "x-easel-error-code": e.code },
  };
}

/**
 * Easel's own error body `{error: {code, message, param}}` with the catalog status (docs/errors.md, "Outside the
 * dialects"), the same body the server gives paths that belong to no dialect.
 */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";

export function easelError(e: EaselError): ErrorReply {
  return {
    status: e.status,
    body: { error: { code: e.code, message: e.message, param: e.param ?? null } },
    headers: { "x-easel-error-code": e.code },
  };
}

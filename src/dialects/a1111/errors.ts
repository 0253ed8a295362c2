/**
 * AUTOMATIC1111's error bodies (modules/api/api.py, api_middleware): bad request bodies get FastAPI's validation
 * answer, 422 `{"detail": [{"loc": ["body", field], "msg", "type"}]}`; every other error goes through A1111's
 * handle_exception, `{"error": "HTTPException", "detail": message, "body": "", "errors": "<status>: <message>"}`,
 * with the status: 401 (and `WWW-Authenticate: Basic`, as its --api-auth answers), 404 for an unknown sampler or
 * model, 422 for an unknown script, Easel's catalog status for the rest.
 */
import type { EaselError } from "../../core/errors.ts";
import type { ErrorReply } from "../_shared/dialect.ts";

/** Easel's field names (checked after translation, core/limits.ts) as an A1111 body spells them. */
const A1111_FIELD: Record<string, string> = {
  n: "batch_size",
  guidance_scale: "cfg_scale",
  strength: "denoising_strength",
  clip_skip: "override_settings.CLIP_stop_at_last_layers",
  init_image: "init_images",
};

/** Input errors A1111 raises as HTTPException rather than as a validation error, with its status. */
const HTTP_EXCEPTION_REASONS: Record<string, number> = { sampler_not_found: 404, script_not_found: 422 };

function status(e: EaselError): number {
  switch (e.code) {
    case "E_INPUT_INVALID":
      return 422;
    case "E_NOT_SUPPORTED":
    case "E_PROMPT_UNSAFE":
      return 400;
    default:
      return e.status;
  }
}

export function a1111Error(e: EaselError): ErrorReply {
  const headers: Record<string, string> = { "x-easel-error-code": e.code };
  const retryAfter = e.details?.retryAfterSeconds;
  if (typeof retryAfter === "number") headers["retry-after"] = String(Math.ceil(retryAfter));
  if (e.code === "E_AUTH_MISSING" || e.code === "E_AUTH_INVALID") headers["www-authenticate"] = "Basic";
  const reason = typeof e.details?.reason === "string" ? e.details.reason : undefined;
  const httpStatus = reason ? HTTP_EXCEPTION_REASONS[reason] : undefined;
  if (e.code === "E_INPUT_INVALID" && httpStatus === undefined) {
    const field = e.param ? (A1111_FIELD[e.param] ?? e.param) : undefined;
    const loc = ["body", ...(field ? field.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [])];
    return { status: 422, body: { detail: [{ loc, msg: e.message, type: reason ?? "value_error" }] }, headers };
  }
  const s = httpStatus ?? status(e);
  return { status: s, body: { error: "HTTPException", detail: e.message, body: "", errors: `${s}: ${e.message}` }, headers };
}

/**
 * The one place where anything thrown while serving a request becomes an EaselError: Fastify's own errors
 * (body too large, bad JSON, schema validation) get their catalog code here, everything else goes through
 * core's toEaselError. Dialects then only reshape the EaselError.
 */
import type { FastifyError } from "fastify";
import { EaselError, isEaselError, toEaselError } from "../core/errors.ts";

interface ValidationIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** The field a schema issue is about, as the client spelled it ("n", "prompt_rejection_topics.0"). */
function fieldOf(issue: ValidationIssue): string {
  return (issue.instancePath ?? "").split("/").filter(Boolean).join(".");
}

/** The value at an issue's path in the request body (undefined when the client left it out). */
function valueAt(body: unknown, path: string[]): unknown {
  let v = body;
  for (const k of path) v = typeof v === "object" && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

export function validationError(issues: ValidationIssue[], body?: unknown): EaselError {
  const issue = issues[0] ?? {};
  const field = fieldOf(issue);
  const message = issue.message ?? "invalid value";
  const params = issue.params ?? {};
  if (issue.keyword === "unrecognized_keys" && Array.isArray(params.keys) && params.keys.length > 0) {
    const key = [field, String(params.keys[0])].filter(Boolean).join(".");
    return new EaselError("E_INPUT_INVALID", `Unknown parameter: '${key}'.`, {
      param: key,
      details: { reason: "unknown_parameter" },
    });
  }
  if (field === "") {
    return new EaselError("E_INPUT_INVALID", "The request body must be a JSON object.", {
      details: { reason: "invalid_type" },
    });
  }
  const path = (issue.instancePath ?? "").split("/").filter(Boolean);
  if (valueAt(body, path) === undefined) {
    return new EaselError("E_INPUT_INVALID", `Missing required parameter: '${field}'.`, {
      param: field,
      details: { reason: "missing_required_parameter" },
    });
  }
  const reason = issue.keyword === "invalid_type" ? "invalid_type" : "invalid_value";
  const what = reason === "invalid_type" ? "Invalid type for" : "Invalid value for";
  return new EaselError("E_INPUT_INVALID", `${what} '${field}': ${message}.`, {
    param: field,
    details: { reason, ...params },
  });
}

/** `body` is the parsed request body, used to tell a missing field from a wrong one. */
export function boundaryError(err: unknown, body?: unknown): EaselError {
  if (isEaselError(err)) return err;
  const f = err as Partial<FastifyError> | undefined;
  if (f && Array.isArray(f.validation)) return validationError(f.validation as ValidationIssue[], body);
  if (f?.code === "FST_ERR_BAD_URL") {
    return new EaselError("E_INPUT_INVALID", "The request path is not valid: malformed percent-encoding.", {
      details: { reason: "invalid_value" },
    });
  }
  if (f?.code === "FST_ERR_MAX_PARAM_LENGTH") {
    return new EaselError("E_NOT_FOUND", "The request path names nothing on this server (a path segment is too long).");
  }
  if (f?.code === "FST_ERR_CTP_BODY_TOO_LARGE" || f?.statusCode === 413) {
    return new EaselError("E_PAYLOAD_TOO_LARGE", "The request body is larger than this server accepts.");
  }
  if (f?.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || f?.statusCode === 415) {
    return new EaselError("E_INPUT_INVALID", "The request body must be JSON (Content-Type: application/json).", {
      details: { reason: "invalid_type" },
    });
  }
  if (f?.statusCode === 400) {
    return new EaselError("E_INPUT_INVALID", `The request body could not be read: ${f.message ?? "bad request"}`, {
      details: { reason: "invalid_json" },
    });
  }
  return toEaselError(err);
}

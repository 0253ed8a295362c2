/**
 * Segmind's statuses (specs/002): 401 key, 404 unknown URL or model, 405 method, 406 not enough credits, 500 server;
 * 400 for a bad field. The body is `{error: message}` (an Easel upstream adds `code` and `param`).
 */
import { httpError, parseRetryAfter, readErrorBody, type UpstreamError } from "../_shared/errors.ts";

/** Segmind's field names -> Easel's. */
const PARAMS: Record<string, string> = { num_inference_steps: "steps", samples: "n" };

export function segmindError(provider: string, status: number, text: string, headers: { get(name: string): string | null }, now: number): UpstreamError {
  const body = readErrorBody(text);
  // 406 is Segmind's "not enough credits"; a 405 means this client used a wrong URL, which no retry fixes.
  const kind = status === 406 ? "out_of_credits" : status === 405 ? "bad_response" : undefined;
  const param = body.param ? (PARAMS[body.param] ?? body.param) : undefined;
  return httpError(provider, status, body, { kind, retryAfterMs: parseRetryAfter(headers.get("retry-after"), now), param });
}

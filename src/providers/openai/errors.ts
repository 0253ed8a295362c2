/**
 * OpenAI's error answers `{error: {message, type, param, code}}`: 400 invalid request, 401 key, 404 model, 429 with
 * code `insufficient_quota` for an exhausted balance (not worth a retry) or a rate limit (worth one, after
 * Retry-After / retry-after-ms), 5xx server. The same body arrives as an SSE `error` event inside a stream.
 */
import { type ErrorBody, httpError, parseRetryAfter, readErrorBody, UpstreamError, type UpstreamFailure } from "../_shared/errors.ts";

/** The failure an error body describes, when its code or type says more than the status. */
export function kindOfBody(b: ErrorBody): UpstreamFailure | undefined {
  if (b.code === "insufficient_quota" || b.type === "insufficient_quota") return "out_of_credits";
  if (b.code === "rate_limit_exceeded" || b.type === "requests") return "rate_limited";
  if (b.code === "invalid_api_key") return "auth";
  if (b.code === "model_not_found") return "not_found";
  if (b.code === "timeout") return "timeout";
  if (b.type === "server_error") return "server";
  if (b.type === "invalid_request_error") return "bad_request";
  return undefined;
}

export function openAiError(provider: string, status: number, text: string, headers: { get(name: string): string | null }, now: number): UpstreamError {
  const body = readErrorBody(text);
  const ms = Number(headers.get("retry-after-ms"));
  const retryAfterMs = Number.isFinite(ms) && ms > 0 ? ms : parseRetryAfter(headers.get("retry-after"), now);
  // The status decides, except where OpenAI's code tells apart what one status mixes (429: quota or rate).
  const kind = status === 429 && kindOfBody(body) === "out_of_credits" ? "out_of_credits" : undefined;
  return httpError(provider, status, body, { kind, retryAfterMs, param: body.param });
}

/** An SSE `error` event's body (the stream answered 200 before it failed). */
export function openAiStreamError(provider: string, data: string): UpstreamError {
  const body = readErrorBody(data);
  const said = body.message ? `: ${body.message}` : "";
  return new UpstreamError(kindOfBody(body) ?? "server", `provider "${provider}" failed while streaming${said}`, { param: body.param });
}

/**
 * Playground's errors: `{error: message, code: NAME}` with upper-case names (PROMPT_UNSAFE is the one the page
 * documents); 402 or INSUFFICIENT_CREDITS is an exhausted balance, 429 a rate limit.
 */
import { httpError, parseRetryAfter, readErrorBody, type UpstreamError } from "../_shared/errors.ts";

/** Playground's field names -> Easel's. */
const PARAMS: Record<string, string> = { num_inference_steps: "steps", filter_model: "model" };

export function playgroundError(provider: string, status: number, text: string, headers: { get(name: string): string | null }, now: number): UpstreamError {
  const body = readErrorBody(text);
  const kind = body.code === "INSUFFICIENT_CREDITS" ? "out_of_credits" : undefined;
  const param = body.param ? (PARAMS[body.param] ?? body.param) : undefined;
  return httpError(provider, status, body, { kind, retryAfterMs: parseRetryAfter(headers.get("retry-after"), now), param });
}

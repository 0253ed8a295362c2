/**
 * Monica's errors follow OpenAI's table (401 key, 429 rate limit or exhausted balance, 500, 503) and body
 * `{error: {message, type, param, code}}`; 429 with code `insufficient_quota` is the balance, not a rate limit.
 */
import { httpError, parseRetryAfter, readErrorBody, type UpstreamError } from "../_shared/errors.ts";

/** Monica's field names -> Easel's. */
const PARAMS: Record<string, string> = {
  step: "steps",
  num_inference_steps: "steps",
  cfg_scale: "guidance_scale",
  count: "n",
  num_outputs: "n",
  output_quality: "output_compression",
};

export function monicaError(provider: string, status: number, text: string, headers: { get(name: string): string | null }, now: number): UpstreamError {
  const body = readErrorBody(text);
  const quota = body.code === "insufficient_quota" || body.type === "insufficient_quota";
  const kind = status === 429 && quota ? "out_of_credits" : undefined;
  const param = body.param ? (PARAMS[body.param] ?? body.param) : undefined;
  return httpError(provider, status, body, { kind, retryAfterMs: parseRetryAfter(headers.get("retry-after"), now), param });
}

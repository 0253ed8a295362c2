/** Segmind on the wire: `POST {baseUrl}/v1/<model slug>` with `x-api-key` (specs/002), answering raw image/jpeg. */
import type { GenerationRequest } from "../../core/types.ts";
import type { WireRequest } from "../_shared/client.ts";
import type { PlannedCall } from "../_shared/upstream.ts";

export function auth(apiKey: string): Record<string, string> {
  return { "x-api-key": apiKey };
}

export function requestBody(req: GenerationRequest, upstreamModel: string, call: PlannedCall): WireRequest {
  const body: Record<string, unknown> = { prompt: req.prompt, samples: call.n, seed: call.seed ?? -1, base64: false };
  if (req.negativePrompt) body.negative_prompt = req.negativePrompt;
  if (req.steps !== undefined) body.num_inference_steps = req.steps;
  if (req.guidanceScale !== undefined) body.guidance_scale = req.guidanceScale;
  return { path: `/v1/${encodeURIComponent(upstreamModel)}`, body };
}

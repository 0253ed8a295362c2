/** Playground's external API on the wire: Bearer key, `POST {baseUrl}/api/models/external/v1` (specs/001). */
import type { GenerationRequest } from "../../core/types.ts";
import type { WireRequest } from "../_shared/client.ts";
import type { PlannedCall } from "../_shared/upstream.ts";

export const PATH = "/api/models/external/v1";

export function auth(apiKey: string): Record<string, string> {
  return { authorization: `Bearer ${apiKey}` };
}

export function requestBody(req: GenerationRequest, upstreamModel: string, call: PlannedCall): WireRequest {
  const body: Record<string, unknown> = { prompt: req.prompt, filter_model: upstreamModel, width: req.width, height: req.height };
  const put = (k: string, v: unknown) => {
    if (v !== undefined && v !== "") body[k] = v;
  };
  put("negative_prompt", req.negativePrompt);
  put("num_inference_steps", req.steps);
  put("guidance_scale", req.guidanceScale);
  put("scheduler", call.scheduler);
  put("seed", call.seed);
  if (req.initImage) {
    body.init_image = Buffer.from(req.initImage.buffer, req.initImage.byteOffset, req.initImage.byteLength).toString("base64");
    // "strength": documented as a string.
    put("strength", req.strength === undefined ? undefined : String(req.strength));
  }
  return { path: PATH, body };
}

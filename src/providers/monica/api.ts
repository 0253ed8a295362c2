/** Monica on the wire: Bearer key, `POST /v1/image/gen/playground` (specs/000) or `/v1/image/gen/sd` (specs/003). */
import type { GenerationRequest } from "../../core/types.ts";
import type { WireRequest } from "../_shared/client.ts";
import type { PlannedCall, UpstreamSettings } from "../_shared/upstream.ts";
import { monicaModel } from "./models.ts";

export function auth(apiKey: string): Record<string, string> {
  return { authorization: `Bearer ${apiKey}` };
}

function put(body: Record<string, unknown>, key: string, v: unknown): void {
  if (v !== undefined && v !== "") body[key] = v;
}

export function requestBody(req: GenerationRequest, upstreamModel: string, call: PlannedCall, settings: UpstreamSettings): WireRequest {
  const { endpoint } = monicaModel(upstreamModel, settings);
  const size = `${req.width}x${req.height}`;
  const body: Record<string, unknown> = { model: upstreamModel, prompt: req.prompt };
  if (endpoint === "playground") {
    put(body, "negative_prompt", req.negativePrompt);
    body.count = call.n;
    body.size = size;
    put(body, "step", req.steps);
    put(body, "seed", call.seed);
    body.safety_check = false;
    put(body, "cfg_scale", req.guidanceScale);
    return { path: "/v1/image/gen/playground", body };
  }
  put(body, "seed", call.seed);
  body.size = size;
  put(body, "cfg_scale", req.guidanceScale);
  if (upstreamModel === "sdxl") {
    put(body, "negative_prompt", req.negativePrompt);
    body.num_outputs = call.n;
    put(body, "scheduler", call.scheduler);
    put(body, "num_inference_steps", req.steps);
  } else {
    put(body, "steps", req.steps);
    // sd3 answers WebP: the client's quality when WebP was asked, else the best, since the job service transcodes it.
    body.output_quality = req.output.format === "webp" ? (req.output.quality ?? 90) : 100;
  }
  return { path: "/v1/image/gen/sd", body };
}

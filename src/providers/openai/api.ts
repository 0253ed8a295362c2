/** OpenAI Images API on the wire: `POST {baseUrl}/images/generations` with a Bearer key (baseUrl ends in /v1). */
import type { GenerationRequest } from "../../core/types.ts";
import type { WireRequest } from "../_shared/client.ts";
import type { PlannedCall, UpstreamSettings } from "../_shared/upstream.ts";
import { openAiEntry } from "./models.ts";

export const PATH = "/images/generations";

export function auth(apiKey: string): Record<string, string> {
  return { authorization: `Bearer ${apiKey}` };
}

/** One `images.generate` body; only fields the model takes (models.ts), plus Easel's when the upstream is an Easel. */
export function requestBody(req: GenerationRequest, upstreamModel: string, call: PlannedCall, settings: UpstreamSettings): WireRequest {
  const { caps, traits } = openAiEntry(upstreamModel, settings);
  const body: Record<string, unknown> = { model: upstreamModel, prompt: req.prompt, n: call.n, size: `${req.width}x${req.height}` };
  if (traits.responseFormat) body.response_format = "b64_json";
  if (traits.outputFormat) {
    body.output_format = call.format;
    if (req.output.quality !== undefined && call.format === req.output.format && call.format !== "png") body.output_compression = req.output.quality;
  }
  if (traits.background && req.output.background) body.background = req.output.background;
  if (caps.user && req.user !== undefined) body.user = req.user;
  if (call.stream) {
    body.stream = true;
    body.partial_images = req.partialImages;
  }
  if (settings.easelExtensions) {
    const ext: Record<string, unknown> = {
      negative_prompt: req.negativePrompt,
      seed: call.seed,
      steps: req.steps,
      guidance_scale: req.guidanceScale,
      scheduler: call.scheduler,
      clip_skip: req.clipSkip,
      max_sequence_length: req.maxSequenceLength,
      use_t5: req.useT5,
      // Not in Easel's OpenAI dialect: sent so that its answer (an unknown-parameter 400) refuses them, never dropped.
      guidance_rescale: req.guidanceRescale,
      prompt_2: req.prompt2,
      negative_prompt_2: req.negativePrompt2,
      prompt_3: req.prompt3,
      negative_prompt_3: req.negativePrompt3,
    };
    for (const [k, v] of Object.entries(ext)) if (v !== undefined) body[k] = v;
    if (call.format === "png" && req.output.quality !== undefined && req.output.format === "png") body.output_compression = req.output.quality;
  }
  return { path: PATH, body };
}

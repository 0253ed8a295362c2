/** Segmind request -> GenerationRequest (JPEG images, returned raw or as base64). */
import { EaselError } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { resolveModel } from "../_shared/models.ts";
import type { SegmindBody } from "./schema.ts";

export const DEFAULTS = { samples: 1, steps: 25, guidanceScale: 3, base64: true, size: 1024 } as const;

export function translate(body: SegmindBody, images: ImageService): { req: GenerationRequest; base64: boolean } {
  const base64 = body.base64 ?? DEFAULTS.base64;
  const samples = body.samples ?? DEFAULTS.samples;
  if (!base64 && samples > 1) {
    throw new EaselError(
      "E_NOT_SUPPORTED",
      `a raw image/jpeg answer carries one image; send base64: true to receive ${samples} samples`,
      { param: "samples" },
    );
  }
  const info = resolveModel(images, ["playground-v2.5"], { param: "model" });
  return {
    base64,
    req: {
      model: info.id,
      prompt: body.prompt,
      negativePrompt: body.negative_prompt || undefined,
      n: samples,
      // The page gives no size field: Playground v2.5 generates at 1024x1024.
      width: DEFAULTS.size,
      height: DEFAULTS.size,
      steps: body.num_inference_steps ?? DEFAULTS.steps,
      guidanceScale: body.guidance_scale ?? DEFAULTS.guidanceScale,
      seed: body.seed == null || body.seed === -1 ? undefined : body.seed,
      output: { format: "jpeg" },
    },
  };
}

/** Monica Playground request -> GenerationRequest (URLs to PNG images). */
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { resolveModel } from "../_shared/models.ts";
import { parseSize } from "../_shared/numbers.ts";
import type { PlaygroundBody } from "./schema.ts";

export const DEFAULTS = { count: 1, size: "1024x1024", step: 30, cfgScale: 7 } as const;

export function translate(body: PlaygroundBody, images: ImageService): GenerationRequest {
  const name = body.model ?? "playground-v2-5";
  const model = resolveModel(images, [name, "playground-v2.5"], { param: "model" });
  const { width, height } = parseSize(body.size ?? DEFAULTS.size);
  return {
    model: model.id,
    prompt: body.prompt,
    negativePrompt: body.negative_prompt || undefined,
    n: body.count ?? DEFAULTS.count,
    width,
    height,
    steps: body.step ?? DEFAULTS.step,
    guidanceScale: body.cfg_scale ?? DEFAULTS.cfgScale,
    // "If 0, we will use a totally random seed."
    seed: body.seed ? body.seed : undefined,
    output: { format: "png" },
    // The model's image safety checker (a model without one answers E_NOT_SUPPORTED naming safety_check).
    ...(body.safety_check === true ? { safetyCheck: true } : {}),
  };
}

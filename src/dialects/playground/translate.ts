/**
 * Playground external API request -> GenerationRequest (base64 PNG answers, optional img2img). The prompt fields
 * (prompt_filter, expand_prompt, verify_prompt_safety, prompt_rejection_topics) are applied by the route through
 * _shared/prompt-fields.ts, like every dialect's.
 */
import { invalidInput } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { decodeBase64InitImage } from "../_shared/init-image.ts";
import { resolveModel } from "../_shared/models.ts";
import { resolveSchedulerName, schedulerFields } from "../_shared/sampler-names.ts";
import type { ExternalBody } from "./schema.ts";

const CANONICAL: Record<NonNullable<ExternalBody["filter_model"]>, string> = {
  "Playground_v2.5": "playground-v2.5",
  Photorealism: "playground-photorealism",
  Playground_v3: "playground-v3",
};

export const DEFAULTS = { filterModel: "Playground_v2.5", size: 1024, steps: 50, scheduler: "DPMPP_2M_K" } as const;

function side(param: string, v: number, multiple: number, model: string): number {
  if (v % multiple !== 0) throw invalidInput(param, `${param} must be divisible by ${multiple} for ${model}, got ${v}`);
  return v;
}

export async function translate(body: ExternalBody, images: ImageService): Promise<GenerationRequest> {
  const filterModel = body.filter_model ?? DEFAULTS.filterModel;
  const info = resolveModel(images, [filterModel, CANONICAL[filterModel]], { param: "filter_model" });
  const multiple = filterModel === "Playground_v3" ? 32 : 8;
  const width = side("width", body.width ?? DEFAULTS.size, multiple, filterModel);
  const height = side("height", body.height ?? DEFAULTS.size, multiple, filterModel);
  if (body.strength != null && !body.init_image) {
    throw invalidInput("strength", "strength only applies with init_image (img2img)");
  }
  const initImage = body.init_image ? await decodeBase64InitImage(body.init_image) : undefined;
  return {
    model: info.id,
    prompt: body.prompt,
    negativePrompt: body.negative_prompt || undefined,
    n: 1,
    width,
    height,
    steps: body.num_inference_steps ?? DEFAULTS.steps,
    // "Default: 3 with Playground_v2, 7 with other models."
    guidanceScale: body.guidance_scale ?? (filterModel === "Playground_v2.5" ? 3 : 7),
    ...schedulerFields(resolveSchedulerName(body.scheduler ?? DEFAULTS.scheduler, info.kind)),
    seed: body.seed ?? undefined,
    initImage,
    strength: body.strength ?? undefined,
    output: { format: "png" },
  };
}

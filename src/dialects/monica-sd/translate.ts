/**
 * Monica SD request -> GenerationRequest with the page's per-model rules. Out-of-range values for the chosen
 * model are rejected; fields the page says apply to another model are accepted (its own example sends the
 * sdxl-only fields with sd3_5), ignored, and reported as warnings when they differ from their defaults.
 */
import { invalidInput } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest, Warning } from "../../core/types.ts";
import { resolveModel } from "../_shared/models.ts";
import { parseSize } from "../_shared/numbers.ts";
import { resolveSchedulerName, schedulerFields } from "../_shared/sampler-names.ts";
import type { SdBody } from "./schema.ts";

interface Range {
  min: number;
  max: number;
  def: number;
}

const RULES = {
  sdxl: { cfg: { min: 1, max: 50, def: 7.5 }, steps: undefined },
  sd3: { cfg: { min: 0, max: 20, def: 3.5 }, steps: { min: 1, max: 28, def: 28 } },
  sd3_5: { cfg: { min: 0, max: 20, def: 4.5 }, steps: { min: 1, max: 50, def: 40 } },
} satisfies Record<SdBody["model"], { cfg: Range; steps: Range | undefined }>;

/** Easel's canonical ids tried after the client's own name (so an alias "sd3_5" also works). */
const CANONICAL: Record<SdBody["model"], string[]> = {
  sdxl: ["sdxl"],
  sd3: ["sd3", "sd3-medium"],
  sd3_5: ["sd3.5-large", "sd3.5"],
};

export const SDXL_DEFAULTS = { numOutputs: 1, scheduler: "K_EULER", numInferenceSteps: 50 } as const;
export const OUTPUT_QUALITY_DEFAULT = 90;

function inRange(param: string, v: number, r: Range, model: string): number {
  if (v < r.min || v > r.max) {
    throw invalidInput(param, `${param} for ${model} must be between ${r.min} and ${r.max}, got ${v}`, {
      min: r.min,
      max: r.max,
    });
  }
  return v;
}

function ignored(param: string, model: string, why: string): Warning {
  return { code: "W_IGNORED", param, message: `${param} is ignored for ${model}: ${why}` };
}

export function translate(body: SdBody, images: ImageService): { req: GenerationRequest; warnings: Warning[] } {
  const rules = RULES[body.model];
  const info = resolveModel(images, [body.model, ...CANONICAL[body.model]], { param: "model" });
  const warnings: Warning[] = [];
  const { width, height } = parseSize(body.size ?? "1024x1024");
  const guidanceScale = inRange("cfg_scale", body.cfg_scale ?? rules.cfg.def, rules.cfg, body.model);
  const seed = body.seed ? body.seed : undefined;

  if (body.model === "sdxl") {
    if (body.steps != null) warnings.push(ignored("steps", "sdxl", "use num_inference_steps"));
    if (body.output_quality != null) warnings.push(ignored("output_quality", "sdxl", "sdxl images are PNG"));
    return {
      warnings,
      req: {
        model: info.id,
        prompt: body.prompt,
        negativePrompt: body.negative_prompt || undefined,
        n: body.num_outputs ?? SDXL_DEFAULTS.numOutputs,
        width,
        height,
        steps: body.num_inference_steps ?? SDXL_DEFAULTS.numInferenceSteps,
        guidanceScale,
        ...schedulerFields(resolveSchedulerName(body.scheduler ?? SDXL_DEFAULTS.scheduler, info.kind)),
        seed,
        output: { format: "png" },
      },
    };
  }

  const why = "the page lists it for sdxl only";
  if (body.negative_prompt) warnings.push(ignored("negative_prompt", body.model, why));
  if (body.num_outputs != null && body.num_outputs !== SDXL_DEFAULTS.numOutputs) {
    warnings.push(ignored("num_outputs", body.model, `${why}; one image is generated`));
  }
  if (body.scheduler != null && body.scheduler !== SDXL_DEFAULTS.scheduler) {
    warnings.push(ignored("scheduler", body.model, why));
  }
  if (body.num_inference_steps != null && body.num_inference_steps !== SDXL_DEFAULTS.numInferenceSteps) {
    warnings.push(ignored("num_inference_steps", body.model, `${why}; use steps`));
  }
  const stepsRule = rules.steps!;
  return {
    warnings,
    req: {
      model: info.id,
      prompt: body.prompt,
      n: 1,
      width,
      height,
      steps: inRange("steps", body.steps ?? stepsRule.def, stepsRule, body.model),
      guidanceScale,
      seed,
      output: { format: "webp", quality: body.output_quality ?? OUTPUT_QUALITY_DEFAULT },
    },
  };
}

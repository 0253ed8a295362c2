/**
 * OpenAI Images API, `POST /v1/images/generations` (specs/004 and the `openai` npm SDK's ImageGenerateParams),
 * plus Easel's extension fields, which SDK users pass as extra body fields. Unknown fields are rejected, as
 * OpenAI does. Defaults that depend on the model are applied in translate.ts.
 */
import { z } from "zod";
import { SIZE_RE } from "../_shared/numbers.ts";
import { PROMPT_FIELDS, SAFETY_FIELDS } from "../_shared/prompt-fields.ts";

export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export const generationBody = z.strictObject({
  prompt: z.string().min(1).max(32000).describe("A text description of the desired image(s)."),
  model: z.string().min(1).nullish().describe("Installed model id or alias; default: the first installed model."),
  n: z.number().int().min(1).max(10).nullish().describe("Number of images, 1-10 (default 1)."),
  size: z
    .string()
    .regex(SIZE_RE, 'expected "WxH" (e.g. "1024x1024") or "auto"')
    .or(z.literal("auto"))
    .nullish()
    .describe('"WxH" with both sides multiples of 8 in 64-2048, or "auto" (the model default).'),
  quality: z.enum(["standard", "hd", "low", "medium", "high", "auto"]).nullish(),
  response_format: z.enum(["url", "b64_json"]).nullish().describe("Default url."),
  output_format: z.enum(["png", "jpeg", "webp"]).nullish().describe("Default png."),
  output_compression: z.number().int().min(0).max(100).nullish().describe("0-100, the encoder quality."),
  background: z.enum(["transparent", "opaque", "auto"]).nullish(),
  moderation: z.enum(["low", "auto"]).nullish(),
  style: z.enum(["vivid", "natural"]).nullish(),
  user: z.string().max(256).optional(),
  stream: z.boolean().nullish(),
  partial_images: z.number().int().min(0).max(3).nullish().describe("Preview frames to stream (0-3)."),
  // Easel extensions.
  negative_prompt: z.string().max(32000).nullish(),
  seed: z.number().int().min(0).max(MAX_SEED).nullish().describe("Easel: seed; missing = random."),
  // Ranges that depend on the model (steps, guidance, clip_skip, T5 length) are checked against the model's limits.
  steps: z.number().int().min(1).nullish().describe("Easel: denoising steps (at most the model's limit, GET /v1/models)."),
  guidance_scale: z.number().min(0).nullish().describe("Easel: classifier-free guidance (the model's range, GET /v1/models)."),
  scheduler: z.string().min(1).max(64).nullish().describe("Easel: scheduler, a canonical id or a Playground / Monica name."),
  clip_skip: z.number().int().min(0).nullish().describe("Easel: CLIP layers to skip from the end (1 = penultimate), models that accept it."),
  max_sequence_length: z.number().int().min(1).nullish().describe("Easel: T5 prompt length in tokens (SD3; default 256)."),
  use_t5: z.boolean().nullish().describe("Easel: false runs an SD3 model without its T5 encoder (less memory and time)."),
  ...PROMPT_FIELDS,
  ...SAFETY_FIELDS,
});

export type GenerationBody = z.output<typeof generationBody>;

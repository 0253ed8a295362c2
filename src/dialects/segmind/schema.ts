/**
 * Segmind Playground v2.5, `POST /v1/playground-v2.5` (specs/002). `base64` is documented as a boolean with
 * default `1`, so 0 and 1 are accepted as well as false and true. Unknown fields are ignored.
 */
import { z } from "zod";
import { PROMPT_FIELDS, SAFETY_FIELDS } from "../_shared/prompt-fields.ts";

export const MAX_SEED = 999999999999999;

export const segmindBody = z.object({
  prompt: z.string().min(1).max(10000),
  negative_prompt: z.string().max(10000).nullish(),
  samples: z.number().int().min(1).max(4).nullish().describe("1-4 (default 1)."),
  num_inference_steps: z.number().int().min(20).max(100).nullish().describe("20-100 (default 25)."),
  guidance_scale: z.number().min(1).max(25).nullish().describe("1-25 (default 3)."),
  seed: z.number().int().min(-1).max(MAX_SEED).nullish().describe("-1 (default) = random, up to 999999999999999."),
  base64: z
    .preprocess((v) => (v === 1 ? true : v === 0 ? false : v), z.boolean())
    .nullish()
    .describe("true (default): JSON with base64 JPEG; false: the raw image/jpeg body."),
  // Easel extensions: style presets and prompt checks (docs/prompts.md).
  ...PROMPT_FIELDS,
  ...SAFETY_FIELDS,
});

export type SegmindBody = z.output<typeof segmindBody>;

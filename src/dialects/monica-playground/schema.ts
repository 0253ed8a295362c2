/**
 * Monica `POST /v1/image/gen/playground` (specs/000). The page's own curl example sends `"seed": "0"` and
 * `"cfg_scale": "7.0"` (and another version of it `"count": "1"`, `"safety_check": "false"`), so every numeric and
 * boolean field also accepts its string spelling. Unknown fields are ignored, as Monica's gateway does.
 */
import { z } from "zod";
import { booleanish, numeric } from "../_shared/numbers.ts";
import { PROMPT_FIELDS } from "../_shared/prompt-fields.ts";

export const SIZES = ["1024x1024", "768x1344", "1344x768"] as const;
export const MAX_SEED = 2147483647;

export const playgroundBody = z.object({
  prompt: z.string().min(1).max(4000).describe("Prompt, 1-4000 characters."),
  model: z.enum(["playground-v2-5"]).nullish().describe("Default playground-v2-5."),
  negative_prompt: z.string().max(4000).nullish(),
  count: numeric(z.number().int().min(1).max(4)).nullish().describe("Images to generate, 1-4 (default 1)."),
  size: z.enum(SIZES).nullish().describe("Default 1024x1024."),
  step: numeric(z.number().int().min(1).max(50)).nullish().describe("Denoising steps, 1-50 (default 30)."),
  seed: numeric(z.number().int().min(0).max(MAX_SEED)).nullish().describe("0-2147483647; 0 or missing = random."),
  safety_check: booleanish(z.boolean()).nullish().describe("Default false; true runs the model's image safety checker (flagged images black, or refused by configuration)."),
  cfg_scale: numeric(z.number().min(0).max(30)).nullish().describe("Classifier-free guidance, 0-30 (default 7)."),
  // Easel extensions: style presets and prompt checks (docs/prompts.md).
  ...PROMPT_FIELDS,
});

export type PlaygroundBody = z.output<typeof playgroundBody>;

/**
 * Monica `POST /v1/image/gen/sd` (specs/003): models sdxl | sd3 | sd3_5. Field types and the widest ranges live
 * here; the per-model ranges, defaults and "only supports sdxl" rules live in translate.ts. Numbers and booleans
 * also accept their string spelling (the page's example sends `"seed": "42"`, `"cfg_scale": "3.5"`).
 */
import { z } from "zod";
import { numeric } from "../_shared/numbers.ts";
import { PROMPT_FIELDS, SAFETY_FIELDS } from "../_shared/prompt-fields.ts";

export const MODELS = ["sdxl", "sd3", "sd3_5"] as const;
export const SIZES = ["1024x1024", "1344x768", "768x1344"] as const;
/** The Stability v1 sampler enum the page lists. */
export const SCHEDULERS = [
  "K_EULER",
  "DDIM",
  "DDPM",
  "K_DPMPP_2M",
  "K_DPMPP_2S_ANCESTRAL",
  "K_DPM_2",
  "K_DPM_2_ANCESTRAL",
  "K_EULER_ANCESTRAL",
  "K_HEUN",
  "K_LMS",
] as const;
export const MAX_SEED = 4294967295;

export const sdBody = z.object({
  model: z.enum(MODELS),
  prompt: z.string().min(1).max(4000),
  negative_prompt: z.string().max(4000).nullish().describe("sdxl only; ignored for sd3 and sd3_5."),
  seed: numeric(z.number().int().min(0).max(MAX_SEED)).nullish().describe("0-4294967295; 0 or missing = random."),
  size: z.enum(SIZES).nullish().describe("Default 1024x1024."),
  steps: numeric(z.number().int().min(1).max(500))
    .nullish()
    .describe("sd3: 1-28 (default 28); sd3_5: 1-50 (default 40); ignored for sdxl."),
  cfg_scale: numeric(z.number().min(0).max(50))
    .nullish()
    .describe("sd3/sd3_5: 0-20 (default 3.5 / 4.5); sdxl: 1-50 (default 7.5)."),
  num_outputs: numeric(z.number().int().min(1).max(4)).nullish().describe("sdxl only, 1-4 (default 1)."),
  output_quality: numeric(z.number().int().min(0).max(100)).nullish().describe("sd3/sd3_5 only, 0-100 (default 90)."),
  scheduler: z.enum(SCHEDULERS).nullish().describe("sdxl only (default K_EULER)."),
  num_inference_steps: numeric(z.number().int().min(1).max(500)).nullish().describe("sdxl only, 1-500 (default 50)."),
  // Easel extensions: style presets and prompt checks (docs/prompts.md).
  ...PROMPT_FIELDS,
  ...SAFETY_FIELDS,
});

export type SdBody = z.output<typeof sdBody>;

/**
 * Playground AI external API, `POST /api/models/external/v1` (specs/001). Types follow the page: `strength` is
 * documented as a string, so it also accepts a number; everything else takes its JSON type. Unknown fields are
 * ignored. Width/height multiples and model-dependent defaults are checked in translate.ts.
 */
import { z } from "zod";
import { numeric } from "../_shared/numbers.ts";
import { PROMPT_FIELDS, SAFETY_FIELDS } from "../_shared/prompt-fields.ts";

export const FILTER_MODELS = ["Playground_v2.5", "Photorealism", "Playground_v3"] as const;

/** The page's 18 scheduler values; DPMPP_2M_K is the default. */
export const SCHEDULERS = [
  "DPMPP_2M_K",
  "EULER_A",
  "DDIM",
  "PLMS",
  "EULER",
  "HEUN",
  "DPM2",
  "DPM2_A",
  "LMS",
  "LMS_NIHANTH",
  "DPMPP_2M",
  "DPMPP_2M_LU",
  "DPMPP_2M_SDE",
  "DPMPP_2M_SDE_K",
  "DPMPP_2M_SDE_LU",
  "DPMPP_SDE",
  "DPMPP_SDE_K",
  "LMS_K",
] as const;

/** The page's 36 prompt_filter values. */
export const PROMPT_FILTERS = [
  "cartoon",
  "vibrant_glass",
  "dreamy_stickers",
  "ultra_lighting",
  "watercolor",
  "macro_realism",
  "delicate_detail",
  "radiant_symmetry",
  "lush_illustration",
  "saturated_space",
  "neon_mecha",
  "ethereal_low_poly",
  "warm_box",
  "cinematic",
  "cinematic_warm",
  "wasteland",
  "flat_palette",
  "ominous_escape",
  "spielberg",
  "royalistic",
  "masterpiece",
  "wall_art",
  "haze",
  "black_and_white_3d",
  "cinematic_dimensions",
  "futuristic_illumination",
  "photorealistic",
  "cinematic_cold",
  "cute_low_poly_3d",
  "nikon_mode",
  "yellow_fog",
  "moody_impressions",
  "portrait",
  "hypersonic",
  "closeup",
  "old-timey",
] as const;

/** "0 < seed < 2^16". */
export const SEED_MIN = 1;
export const SEED_MAX = 65535;

export const externalBody = z.object({
  prompt: z.string().min(1).max(10000),
  negative_prompt: z.string().max(10000).nullish(),
  filter_model: z.enum(FILTER_MODELS).nullish().describe("Default Playground_v2.5; the others only when configured."),
  width: z.number().int().min(64).max(2048).nullish().describe("Default 1024; multiple of 8 (of 32 for Playground_v3)."),
  height: z.number().int().min(64).max(2048).nullish().describe("Default 1024; multiple of 8 (of 32 for Playground_v3)."),
  num_inference_steps: z.number().int().min(1).max(150).nullish().describe("Default 50, maximum 150."),
  guidance_scale: z.number().min(0).max(30).nullish().describe("Default 3 for Playground_v2.5, 7 for the others."),
  scheduler: z.enum(SCHEDULERS).nullish().describe("Default DPMPP_2M_K."),
  seed: z.number().int().min(SEED_MIN).max(SEED_MAX).nullish().describe("0 < seed < 2^16; missing = random."),
  init_image: z.string().min(1).nullish().describe("Base64 PNG, JPEG or WebP image (at most 4096x4096 pixels) for img2img."),
  strength: numeric(z.number().min(0).max(1)).nullish().describe("img2img: 0 keeps init_image, 1 replaces it."),
  expand_prompt: PROMPT_FIELDS.expand_prompt.describe("Rewrite the prompt with the configured language model (promptExpansion); the prompt used comes back in x-easel-revised-prompt."),
  verify_prompt_safety: PROMPT_FIELDS.verify_prompt_safety.describe("Refuse prompts in the unsafe categories with PROMPT_UNSAFE (docs/prompts.md)."),
  prompt_rejection_topics: PROMPT_FIELDS.prompt_rejection_topics.describe("Refuse prompts that reference one of these topics with PROMPT_UNSAFE."),
  ...SAFETY_FIELDS,
  prompt_filter: z.enum(PROMPT_FILTERS).nullish().describe("A style preset wrapping the prompt (GET /v1/styles); the prompt used comes back in x-easel-revised-prompt."),
});

export type ExternalBody = z.output<typeof externalBody>;

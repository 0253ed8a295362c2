/**
 * AUTOMATIC1111 web UI API bodies (stable-diffusion-webui 1.10, modules/api/models.py: the pydantic models built from
 * StableDiffusionProcessingTxt2Img / Img2Img). Like pydantic, unknown fields are ignored (SillyTavern sends its own
 * `url` and `auth` in the body), numbers may come as numeric strings, and optional fields may be null. Fields Easel
 * has no equivalent for are accepted and, when they would change the result, named in a warning (translate.ts).
 */
import { z } from "zod";
import { booleanish, numeric } from "../_shared/numbers.ts";
import { PROMPT_CHECK_FIELDS, SAFETY_FIELDS } from "../_shared/prompt-fields.ts";

/** A1111 seeds are 32-bit; -1 (or any negative value, as A1111 reads it) means random. */
export const MAX_SEED = 4294967295;

const int = (min: number, max: number) => numeric(z.number().int().min(min).max(max));
const num = (min: number, max: number) => numeric(z.number().min(min).max(max));
const flag = booleanish(z.boolean()).nullish();

/** Fields both routes take. */
const common = {
  prompt: z.string().max(100_000).nullish().describe('Default "".'),
  negative_prompt: z.string().max(100_000).nullish(),
  styles: z.array(z.string()).nullish().describe("Prompt styles by name (GET /sdapi/v1/prompt-styles), applied in order."),
  seed: int(-1, MAX_SEED).nullish().describe("-1 (default): random."),
  subseed: int(-1, MAX_SEED).nullish(),
  subseed_strength: num(0, 1).nullish().describe("Variation seeds are not implemented: a value above 0 is a warning."),
  seed_resize_from_h: numeric(z.number().int()).nullish(),
  seed_resize_from_w: numeric(z.number().int()).nullish(),
  sampler_name: z.string().max(100).nullish().describe('A1111 sampler ("DPM++ 2M", "Euler a", legacy "DPM++ 2M Karras") or an Easel scheduler id.'),
  sampler_index: z.string().max(100).nullish().describe("Older spelling of sampler_name."),
  scheduler: z.string().max(100).nullish().describe('Schedule type ("Automatic", "Karras", "Uniform", ...).'),
  batch_size: int(1, 64).nullish(),
  n_iter: int(1, 64).nullish(),
  steps: int(1, 1000).nullish(),
  cfg_scale: num(0, 100).nullish(),
  width: int(8, 16384).nullish(),
  height: int(8, 16384).nullish(),
  restore_faces: flag,
  tiling: flag,
  do_not_save_samples: flag,
  do_not_save_grid: flag,
  eta: numeric(z.number()).nullish(),
  denoising_strength: num(0, 1).nullish(),
  s_min_uncond: numeric(z.number()).nullish(),
  s_churn: numeric(z.number()).nullish(),
  s_tmax: numeric(z.number()).nullish(),
  s_tmin: numeric(z.number()).nullish(),
  s_noise: numeric(z.number()).nullish(),
  override_settings: z.record(z.string(), z.unknown()).nullish(),
  override_settings_restore_afterwards: flag,
  refiner_checkpoint: z.string().nullish(),
  refiner_switch_at: numeric(z.number()).nullish(),
  disable_extra_networks: flag,
  comments: z.record(z.string(), z.unknown()).nullish(),
  clip_skip: int(1, 12).nullish().describe("SD.Next's spelling of CLIP_stop_at_last_layers (1 = no skip)."),
  script_name: z.string().nullish(),
  script_args: z.array(z.unknown()).nullish(),
  send_images: flag,
  save_images: flag,
  alwayson_scripts: z.record(z.string(), z.unknown()).nullish(),
  force_task_id: z.string().nullish(),
  infotext: z.string().nullish(),
  // Easel extensions: Playground's prompt checks and expansion, the image safety checker (docs/prompts.md).
  ...PROMPT_CHECK_FIELDS,
  ...SAFETY_FIELDS,
};

export const txt2imgBody = z.object({
  ...common,
  enable_hr: flag,
  firstphase_width: numeric(z.number().int()).nullish(),
  firstphase_height: numeric(z.number().int()).nullish(),
  hr_scale: numeric(z.number()).nullish(),
  hr_upscaler: z.string().nullish(),
  hr_second_pass_steps: numeric(z.number().int()).nullish(),
  hr_resize_x: numeric(z.number().int()).nullish(),
  hr_resize_y: numeric(z.number().int()).nullish(),
  hr_checkpoint_name: z.string().nullish(),
  hr_sampler_name: z.string().nullish(),
  hr_scheduler: z.string().nullish(),
  hr_prompt: z.string().nullish(),
  hr_negative_prompt: z.string().nullish(),
  firstpass_image: z.string().nullish(),
});

export const img2imgBody = z.object({
  ...common,
  init_images: z.array(z.string()).min(1).max(64).describe("Base64 images (a data: URL prefix is accepted); the first is used."),
  resize_mode: int(0, 3).nullish(),
  image_cfg_scale: numeric(z.number()).nullish(),
  mask: z.string().nullish().describe("Inpainting masks are not supported through this route yet."),
  mask_blur_x: numeric(z.number().int()).nullish(),
  mask_blur_y: numeric(z.number().int()).nullish(),
  mask_blur: numeric(z.number().int()).nullish(),
  mask_round: flag,
  inpainting_fill: numeric(z.number().int()).nullish(),
  inpaint_full_res: booleanish(z.boolean()).nullish(),
  inpaint_full_res_padding: numeric(z.number().int()).nullish(),
  inpainting_mask_invert: numeric(z.number().int()).nullish(),
  initial_noise_multiplier: numeric(z.number()).nullish(),
  latent_mask: z.string().nullish(),
  include_init_images: flag,
});

/** POST /sdapi/v1/options: any settings object (Open WebUI posts back the whole GET answer). */
export const optionsBody = z.record(z.string(), z.unknown());

export type Txt2ImgBody = z.output<typeof txt2imgBody>;
export type Img2ImgBody = z.output<typeof img2imgBody>;
export type CommonBody = Txt2ImgBody | Img2ImgBody;

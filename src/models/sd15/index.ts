/** Stable Diffusion 1.x / 2.x / SD-Turbo (StableDiffusionPipeline). */
import type { ModelFamily } from "../pipeline/family.ts";
import { isTurbo, sd15Defaults, sd15Limits } from "./config.ts";
import { loadSd15 } from "./pipeline.ts";

const PIPELINES = new Set(["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"]);

export const sd15Family: ModelFamily = {
  id: "sd15",
  detect: (ckpt) => PIPELINES.has(ckpt.pipelineClass),
  required: ["text_encoder", "unet", "vae", "tokenizer"],
  kind: () => "vp",
  limits: sd15Limits,
  defaults: sd15Defaults,
  aliases: (ckpt) => (isTurbo(ckpt) ? ["sd-turbo"] : ["sd15", "stable-diffusion-1.5"]),
  load: loadSd15,
};

/** The StableDiffusionXLPipeline families: SDXL / SDXL-Turbo, and Playground v2.5 (an EDM-trained SDXL variant). */
import type { ModelFamily } from "../pipeline/family.ts";
import { isSdxlPipeline, sdxlAliases, sdxlDefaults, sdxlLimits } from "./config.ts";
import { loadPlayground, loadSdxl } from "./pipeline.ts";
import { isPlayground, PLAYGROUND_ALIASES, playgroundDefaults } from "./playground.ts";

const REQUIRED = ["text_encoder", "text_encoder_2", "unet", "vae", "tokenizer", "tokenizer_2"] as const;

export const sdxlFamily: ModelFamily = {
  id: "sdxl",
  detect: (ckpt) => isSdxlPipeline(ckpt) && !isPlayground(ckpt),
  required: REQUIRED,
  kind: () => "vp",
  limits: sdxlLimits,
  defaults: sdxlDefaults,
  aliases: sdxlAliases,
  load: loadSdxl,
};

export const playgroundFamily: ModelFamily = {
  id: "playground",
  detect: (ckpt) => isSdxlPipeline(ckpt) && isPlayground(ckpt),
  required: REQUIRED,
  kind: () => "edm",
  limits: sdxlLimits,
  defaults: playgroundDefaults,
  aliases: () => [...PLAYGROUND_ALIASES],
  load: loadPlayground,
};

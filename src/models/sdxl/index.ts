/** The StableDiffusionXLPipeline families: SDXL / SDXL-Turbo, and Playground v2.5 (an EDM-trained SDXL variant). */
import type { ModelFamily } from "../pipeline/family.ts";
import { sdxlAliases, sdxlDefaults } from "./config.ts";
import { loadPlayground, loadSdxl } from "./pipeline.ts";
import { PLAYGROUND_ALIASES, playgroundDefaults } from "./playground.ts";

export const sdxlFamily: ModelFamily = {
  id: "sdxl",
  aliases: sdxlAliases,
  defaults: sdxlDefaults,
  load: loadSdxl,
};

export const playgroundFamily: ModelFamily = {
  id: "playground",
  aliases: () => [...PLAYGROUND_ALIASES],
  defaults: playgroundDefaults,
  load: loadPlayground,
};

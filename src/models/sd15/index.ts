import type { ModelFamily } from "../pipeline/family.ts";
import { isTurbo, sd15Defaults } from "./config.ts";
import { loadSd15 } from "./pipeline.ts";

export const sd15Family: ModelFamily = {
  id: "sd15",
  aliases: (ckpt) => (isTurbo(ckpt) ? ["sd-turbo"] : ["sd15", "stable-diffusion-1.5"]),
  defaults: sd15Defaults,
  load: loadSd15,
};

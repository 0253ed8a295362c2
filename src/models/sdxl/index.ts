import type { ModelFamily } from "../_shared/family.ts";
import { sdxlAliases, sdxlDefaults } from "./config.ts";
import { loadSdxl } from "./pipeline.ts";

export const sdxlFamily: ModelFamily = {
  id: "sdxl",
  aliases: sdxlAliases,
  defaults: sdxlDefaults,
  load: loadSdxl,
};

/** Model families the local engine can run, by the family id engine/checkpoint.ts detects. One line per family. */
import type { ModelFamily } from "./pipeline/family.ts";
import { playgroundFamily } from "./sdxl/index.ts";
import { sd15Family } from "./sd15/index.ts";
import { sd3Family } from "./sd3/index.ts";
import { sdxlFamily } from "./sdxl/index.ts";

export const FAMILIES: Record<string, ModelFamily> = {
  sd15: sd15Family,
  sdxl: sdxlFamily,
  playground: playgroundFamily,
  sd3: sd3Family,
};

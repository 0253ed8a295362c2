/** SDXL / SDXL-Turbo: the shared StableDiffusionXLPipeline with this family's defaults and previews. */
import type { CheckpointLike, LoadedPipeline, RuntimeOptions } from "../_shared/family.ts";
import { loadSdxlPipeline } from "../_shared/sdxl-pipeline.ts";
import { SDXL_PREVIEW, sdxlDefaults } from "./config.ts";

export function loadSdxl(ckpt: CheckpointLike, rt: RuntimeOptions): Promise<LoadedPipeline> {
  return loadSdxlPipeline(ckpt, rt, { family: "sdxl", defaults: sdxlDefaults(ckpt), previewFactors: SDXL_PREVIEW });
}

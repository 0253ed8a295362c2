/** Playground v2.5: the shared StableDiffusionXLPipeline; EDM sampling and latent statistics come from its configs. */
import type { CheckpointLike, LoadedPipeline, RuntimeOptions } from "../_shared/family.ts";
import { loadSdxlPipeline } from "../_shared/sdxl-pipeline.ts";
import { PLAYGROUND_PREVIEW, playgroundDefaults } from "./config.ts";

export function loadPlayground(ckpt: CheckpointLike, rt: RuntimeOptions): Promise<LoadedPipeline> {
  return loadSdxlPipeline(ckpt, rt, { family: "playground", defaults: playgroundDefaults(ckpt), previewFactors: PLAYGROUND_PREVIEW });
}

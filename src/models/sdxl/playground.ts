/**
 * Playground v2.5 (`playgroundai/playground-v2.5-1024px-aesthetic`; StableDiffusionXLPipeline, EDM-trained):
 * defaults and preview factors. The EDM DPM-Solver++ scheduler (sigma 0.002..80, sigma_data 0.5, Karras rho 7) and the
 * VAE's latents_mean/latents_std come from the checkpoint's own configs (MODELS.md §1.6).
 */
import type { Checkpoint, ModelDefaults } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";

/** The sizes Playground's hosted API offers for v2.5 (width x height). */
export const PLAYGROUND_SIZES: readonly { width: number; height: number }[] = [
  { width: 1024, height: 1024 },
  { width: 768, height: 1344 },
  { width: 1344, height: 768 },
];

/** Model card defaults: 50 steps, guidance 3; size = unet.config.sample_size * 8 (128 -> 1024). */
export function playgroundDefaults(ckpt: Checkpoint): ModelDefaults {
  const unet = ckpt.components.unet?.config ?? {};
  const sampleSize = typeof unet.sample_size === "number" ? unet.sample_size : 128;
  return { width: sampleSize * 8, height: sampleSize * 8, steps: 50, guidanceScale: 3 };
}

export const PLAYGROUND_ALIASES: readonly string[] = ["playground-v2.5", "playground-v2-5", "Playground_v2.5", "playground-v2.5-1024px-aesthetic"];

/** ComfyUI's SDXL_Playground_2_5 Latent2RGB factors, no bias (MODELS.md §6.2). */
export const PLAYGROUND_PREVIEW: LatentRgbFactors = {
  weights: [
    [0.392, 0.4054, 0.4549],
    [-0.2634, -0.0196, 0.0653],
    [0.0568, 0.1687, -0.0755],
    [-0.3112, -0.2359, -0.2076],
  ],
};

/** Playground v2.5 is an SDXL pipeline trained with EDM: its scheduler is EDM or its VAE carries latents_mean/std. */
export function isPlayground(ckpt: Checkpoint): boolean {
  const vae = ckpt.components.vae?.config;
  return ckpt.schedulerClass.startsWith("EDM") || (Array.isArray(vae?.latents_mean) && Array.isArray(vae?.latents_std));
}

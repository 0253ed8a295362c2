/**
 * SDXL base 1.0 and SDXL-Turbo (StableDiffusionXLPipeline): defaults read from the checkpoint's configs, and the
 * preview factors. Published configs: MODELS.md §1.4 (Euler, leading spacing, UNet sample_size 128) and §1.5
 * (Euler ancestral, trailing spacing, sample_size 64).
 */
import type { ModelLimits } from "../../core/limits.ts";
import type { Checkpoint, ModelDefaults, RuntimeOptions } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";
import { unetLimits, unetMemory } from "../pipeline/limits.ts";

/** SDXL-Turbo ships a trailing-spacing scheduler and is distilled for 1-4 steps without guidance. */
export function isSdxlTurbo(ckpt: Checkpoint): boolean {
  return ckpt.schedulerConfig.timestep_spacing === "trailing";
}

export function sdxlDefaults(ckpt: Checkpoint): ModelDefaults {
  const unet = ckpt.components.unet?.config ?? {};
  const turbo = isSdxlTurbo(ckpt);
  // Default size = unet.config.sample_size * vae_scale_factor, as the pipeline computes it (128 -> 1024, Turbo 64 -> 512).
  const sampleSize = typeof unet.sample_size === "number" ? unet.sample_size : turbo ? 64 : 128;
  return {
    width: sampleSize * 8,
    height: sampleSize * 8,
    steps: turbo ? 1 : 50,
    guidanceScale: turbo ? 0 : 5,
  };
}

/** StableDiffusionXLImg2ImgPipeline's default `strength`. */
export const SDXL_IMG2IMG_STRENGTH = 0.3;

/** SDXL, SDXL-Turbo and Playground v2.5 (the same pipeline): clip_skip is not implemented for the two-encoder stack. */
export function sdxlLimits(ckpt?: Checkpoint, rt?: Pick<RuntimeOptions, "memory" | "memoryLimitBytes">): ModelLimits {
  const limits = unetLimits({ maxClipSkip: 0, prompt2: true, img2imgStrength: SDXL_IMG2IMG_STRENGTH });
  return ckpt ? { ...limits, memory: unetMemory(ckpt, ["text_encoder", "text_encoder_2", "unet", "vae"], rt) } : limits;
}

/** An SDXL pipeline class; Playground v2.5 (EDM scheduler or latents_mean/std in the VAE) is its own family. */
export function isSdxlPipeline(ckpt: Checkpoint): boolean {
  return ["StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"].includes(ckpt.pipelineClass);
}

export function sdxlAliases(ckpt: Checkpoint): string[] {
  return isSdxlTurbo(ckpt) ? ["sdxl-turbo"] : ["sdxl", "stable-diffusion-xl"];
}

/** ComfyUI's SDXL Latent2RGB factors and bias (MODELS.md §6.2). */
export const SDXL_PREVIEW: LatentRgbFactors = {
  weights: [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
  ],
  bias: [0.1084, -0.0175, -0.0011],
};

/** Stable Diffusion 1.x / 2.x / SD-Turbo (StableDiffusionPipeline): defaults and preview factors. */
import type { ModelLimits } from "../../core/limits.ts";
import type { Checkpoint, ModelDefaults, RuntimeOptions } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";
import { unetLimits, unetMemory } from "../pipeline/limits.ts";

/** SD-Turbo ships Euler with trailing spacing and is meant for 1-4 steps without guidance. */
export function isTurbo(ckpt: Checkpoint): boolean {
  return ckpt.schedulerConfig.timestep_spacing === "trailing";
}

export function sd15Defaults(ckpt: Checkpoint): ModelDefaults {
  const unet = ckpt.components.unet?.config ?? {};
  const sampleSize = typeof unet.sample_size === "number" ? unet.sample_size : 64;
  const turbo = isTurbo(ckpt);
  return {
    width: sampleSize * 8,
    height: sampleSize * 8,
    steps: turbo ? 1 : 50,
    guidanceScale: turbo ? 0 : 7.5,
  };
}

/** StableDiffusionImg2ImgPipeline's default `strength`. */
export const SD15_IMG2IMG_STRENGTH = 0.8;

export function sd15Limits(ckpt: Checkpoint, rt?: Pick<RuntimeOptions, "memory">): ModelLimits {
  return {
    ...unetLimits({
      // clip_skip k reads hidden_states[-(k + 1)]: at most num_hidden_layers - 1.
      maxClipSkip: Number(ckpt.components.text_encoder?.config.num_hidden_layers ?? 12) - 1,
      prompt2: false,
      img2imgStrength: SD15_IMG2IMG_STRENGTH,
    }),
    memory: unetMemory(ckpt, ["text_encoder", "unet", "vae"], rt),
  };
}

/** ComfyUI's SD1.5 Latent2RGB factors (MODELS.md §6.2). */
export const SD15_PREVIEW: LatentRgbFactors = {
  weights: [
    [0.3512, 0.2297, 0.3227],
    [0.325, 0.4974, 0.235],
    [-0.2829, 0.1762, 0.2721],
    [-0.212, -0.2616, -0.7177],
  ],
};

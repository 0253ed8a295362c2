/** Stable Diffusion 1.x / 2.x / SD-Turbo (StableDiffusionPipeline): defaults and preview factors. */
import { join } from "node:path";
import { EaselError } from "../../core/errors.ts";
import type { ModelLimits } from "../../core/limits.ts";
import type { Checkpoint, ModelDefaults, RuntimeOptions } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";
import { MAX_STEPS, unetLimits, unetMemory } from "../pipeline/limits.ts";

/** SD-Turbo ships Euler with trailing spacing and is meant for 1-4 steps without guidance. */
export function isTurbo(ckpt: Checkpoint): boolean {
  return ckpt.schedulerConfig.timestep_spacing === "trailing";
}

/**
 * The key of model_index.json where a checkpoint states its own sampling defaults, in the pipeline call's argument
 * names: `"_easel_defaults": { "num_inference_steps": 20, "guidance_scale": 3.0 }` (either may be left out).
 * diffusers drops model_index keys that start with "_" (as it does `_class_name`), so the folder still loads there.
 */
export const CHECKPOINT_DEFAULTS_KEY = "_easel_defaults";

function checkpointDefaults(ckpt: Checkpoint): { steps?: number; guidanceScale?: number } {
  const raw = ckpt.modelIndex[CHECKPOINT_DEFAULTS_KEY];
  if (raw === undefined) return {};
  const file = join(ckpt.dir, "model_index.json");
  const invalid = (what: string) => new EaselError("E_CHECKPOINT_INVALID", `${file}: ${CHECKPOINT_DEFAULTS_KEY} ${what}`, { details: { file } });
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw invalid("is not a JSON object");
  const { num_inference_steps: steps, guidance_scale: guidanceScale, ...rest } = raw as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) throw invalid(`has unknown keys (${unknown.join(", ")}); allowed: num_inference_steps, guidance_scale`);
  if (steps !== undefined && !(Number.isInteger(steps) && (steps as number) >= 1 && (steps as number) <= MAX_STEPS)) {
    throw invalid(`num_inference_steps must be an integer from 1 to ${MAX_STEPS}`);
  }
  if (guidanceScale !== undefined && !(typeof guidanceScale === "number" && guidanceScale >= 0 && guidanceScale <= 50)) {
    throw invalid("guidance_scale must be a number from 0 to 50");
  }
  return { steps: steps as number | undefined, guidanceScale: guidanceScale as number | undefined };
}

/**
 * diffusers' StableDiffusionPipeline defaults (unet.sample_size·8 px, 50 steps, guidance 7.5; SD-Turbo 1 step, no
 * guidance), unless model_index.json's `_easel_defaults` states the checkpoint's own steps and guidance.
 */
export function sd15Defaults(ckpt: Checkpoint): ModelDefaults {
  const unet = ckpt.components.unet?.config ?? {};
  const sampleSize = typeof unet.sample_size === "number" ? unet.sample_size : 64;
  const turbo = isTurbo(ckpt);
  const own = checkpointDefaults(ckpt);
  return {
    width: sampleSize * 8,
    height: sampleSize * 8,
    steps: own.steps ?? (turbo ? 1 : 50),
    guidanceScale: own.guidanceScale ?? (turbo ? 0 : 7.5),
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

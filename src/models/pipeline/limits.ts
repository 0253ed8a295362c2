/** Limits every family starts from; a family's index.ts states what differs (core/limits.ts checks requests). */
import type { ModelLimits } from "../../core/limits.ts";

/** Images per request and steps: what one worker is allowed to spend on one request. */
export const MAX_IMAGES = 16;
export const MAX_STEPS = 1000;

/** UNet pipelines (SD1.x, SDXL, Playground): any multiple of the VAE factor 8, classifier-free guidance 0-50. */
export function unetLimits(o: { maxClipSkip: number; prompt2: boolean; img2imgStrength: number }): ModelLimits {
  return {
    sizeMultiple: 8,
    minSize: 8,
    maxSize: 8192,
    maxImages: MAX_IMAGES,
    maxSteps: MAX_STEPS,
    guidance: { min: 0, max: 50 },
    guidanceRescale: true,
    negativePrompt: true,
    prompt2: o.prompt2,
    prompt3: false,
    maxClipSkip: o.maxClipSkip,
    maxSequenceLength: 0,
    img2img: { rule: "truncate", defaultStrength: o.img2imgStrength },
  };
}

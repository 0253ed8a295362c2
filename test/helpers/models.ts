/** Model descriptions for tests that stand in for installed models: each family's real limits and kind. */
import type { ModelKind, ModelLimits } from "../../src/core/limits.ts";
import { unetLimits } from "../../src/models/pipeline/limits.ts";
import { sdxlLimits } from "../../src/models/sdxl/config.ts";

/** The limits a family states for a checkpoint with the published configs (SD3: pos_embed_max_size 192, with T5). */
export function familyLimits(family: string): ModelLimits {
  switch (family) {
    case "sdxl":
    case "playground":
      return sdxlLimits();
    case "sd3":
      return {
        ...unetLimits({ maxClipSkip: 0, prompt2: true, img2imgStrength: 0.6 }),
        sizeMultiple: 16,
        minSize: 16,
        maxSize: 192 * 16,
        guidanceRescale: false,
        prompt3: true,
        maxSequenceLength: 512,
        img2img: { rule: "fractional", defaultStrength: 0.6 },
      };
    default:
      return unetLimits({ maxClipSkip: 11, prompt2: false, img2imgStrength: 0.8 });
  }
}

export function familyKind(family: string): ModelKind {
  return family === "playground" ? "edm" : family === "sd3" ? "flow" : "vp";
}

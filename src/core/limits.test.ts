import assert from "node:assert/strict";
import { test } from "node:test";
import { isEaselError } from "./errors.ts";
import { checkModelLimits, img2imgStartStep, type ModelLimits } from "./limits.ts";

const LIMITS: ModelLimits = {
  sizeMultiple: 16,
  minSize: 16,
  maxSize: 1024,
  maxImages: 4,
  maxSteps: 50,
  guidance: { min: 0, max: 20 },
  guidanceRescale: false,
  negativePrompt: true,
  prompt2: false,
  prompt3: false,
  maxClipSkip: 2,
  maxSequenceLength: 0,
  img2img: { rule: "truncate", defaultStrength: 0.8 },
};
const DEFAULTS = { width: 512, height: 512, steps: 20, guidanceScale: 5 };

function refused(req: Parameters<typeof checkModelLimits>[0], code: string, param: string, img2img = false, limits = LIMITS): void {
  assert.throws(
    () => checkModelLimits(req, DEFAULTS, limits, img2img),
    (e: unknown) => isEaselError(e) && e.code === code && e.param === param,
    JSON.stringify(req),
  );
}

test("img2img start step: diffusers' SD/SDXL rule truncates steps * strength, SD3's keeps it fractional", () => {
  assert.equal(img2imgStartStep("truncate", 10, 0.75), 3); // int(7.5) = 7 steps run
  assert.equal(img2imgStartStep("fractional", 10, 0.75), 2); // int(10 - 7.5) = 2: 8 steps run
  assert.equal(img2imgStartStep("truncate", 10, 0.05), 10); // no step left
  assert.equal(img2imgStartStep("fractional", 10, 0.05), 9); // one step
  assert.equal(img2imgStartStep("truncate", 4, 1), 0);
});

test("each limit, one past it, is refused naming the field; at the limit it passes", () => {
  assert.deepEqual(checkModelLimits({ n: 4, width: 1024, height: 16, steps: 50, guidanceScale: 20, clipSkip: 2 }, DEFAULTS, LIMITS, false), []);
  refused({ n: 5 }, "E_INPUT_INVALID", "n");
  refused({ n: 1, width: 1040 }, "E_INPUT_INVALID", "width");
  refused({ n: 1, height: 24 }, "E_INPUT_INVALID", "height");
  refused({ n: 1, steps: 51 }, "E_INPUT_INVALID", "steps");
  refused({ n: 1, guidanceScale: 20.5 }, "E_INPUT_INVALID", "guidance_scale");
  refused({ n: 1, clipSkip: 3 }, "E_INPUT_INVALID", "clip_skip");
  refused({ n: 1, clipSkip: 1 }, "E_NOT_SUPPORTED", "clip_skip", false, { ...LIMITS, maxClipSkip: 0 });
  refused({ n: 1, maxSequenceLength: 77 }, "E_NOT_SUPPORTED", "max_sequence_length");
  refused({ n: 1, maxSequenceLength: 513 }, "E_INPUT_INVALID", "max_sequence_length", false, { ...LIMITS, maxSequenceLength: 512 });
  refused({ n: 1, steps: 10, strength: 0.05 }, "E_INPUT_INVALID", "strength", true);
  refused({ n: 1, strength: 1.5 }, "E_INPUT_INVALID", "strength", true);
  refused({ n: 1, strength: -0.1 }, "E_INPUT_INVALID", "strength", true);
  // strength 0 reproduces the init image: no step is needed.
  assert.deepEqual(checkModelLimits({ n: 1, steps: 10, strength: 0 }, DEFAULTS, LIMITS, true), []);
  refused({ n: 1 }, "E_NOT_SUPPORTED", "init_image", true, { ...LIMITS, img2img: false });
  // The same strength is fine under the fractional rule.
  assert.deepEqual(checkModelLimits({ n: 1, steps: 10, strength: 0.05 }, DEFAULTS, { ...LIMITS, img2img: { rule: "fractional", defaultStrength: 0.6 } }, true), []);
});

test("inputs the model accepts but ignores are warnings, not errors", () => {
  const w = checkModelLimits({ n: 1, prompt2: "b", prompt3: "c", guidanceRescale: 0.7 }, DEFAULTS, LIMITS, false);
  assert.deepEqual(w.map((x) => x.param).sort(), ["guidance_rescale", "prompt_2", "prompt_3"]);
  assert.ok(w.every((x) => x.code === "W_PARAM_IGNORED"));
});

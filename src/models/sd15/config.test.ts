import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EaselError } from "../../core/errors.ts";
import type { Checkpoint } from "../pipeline/family.ts";
import { CHECKPOINT_DEFAULTS_KEY, sd15Defaults } from "./config.ts";

/** The fields sd15Defaults reads: the UNet's sample_size, the scheduler's spacing and model_index.json. */
function ckpt(modelIndex: Record<string, unknown>, spacing = "leading", sampleSize = 16): Checkpoint {
  return {
    dir: "/models/x",
    pipelineClass: "StableDiffusionPipeline",
    modelIndex: { _class_name: "StableDiffusionPipeline", ...modelIndex },
    components: { unet: { config: { sample_size: sampleSize } } } as unknown as Checkpoint["components"],
    schedulerClass: "DPMSolverMultistepScheduler",
    schedulerConfig: { timestep_spacing: spacing },
    tokenizers: {},
  };
}

describe("sd15Defaults", () => {
  test("diffusers' defaults without the checkpoint's own: sample_size·8 px, 50 steps, guidance 7.5", () => {
    assert.deepEqual(sd15Defaults(ckpt({})), { width: 128, height: 128, steps: 50, guidanceScale: 7.5 });
    assert.deepEqual(sd15Defaults(ckpt({}, "trailing", 64)), { width: 512, height: 512, steps: 1, guidanceScale: 0 });
  });

  test("model_index.json's _easel_defaults sets steps and guidance, each on its own", () => {
    const both = { [CHECKPOINT_DEFAULTS_KEY]: { num_inference_steps: 20, guidance_scale: 3 } };
    assert.deepEqual(sd15Defaults(ckpt(both)), { width: 128, height: 128, steps: 20, guidanceScale: 3 });
    assert.deepEqual(sd15Defaults(ckpt({ [CHECKPOINT_DEFAULTS_KEY]: { num_inference_steps: 25 } })).guidanceScale, 7.5);
    assert.equal(sd15Defaults(ckpt({ [CHECKPOINT_DEFAULTS_KEY]: { guidance_scale: 0 } })).guidanceScale, 0);
    assert.equal(sd15Defaults(ckpt({ [CHECKPOINT_DEFAULTS_KEY]: { guidance_scale: 2 } }, "trailing")).steps, 1);
    assert.equal(sd15Defaults(ckpt({ [CHECKPOINT_DEFAULTS_KEY]: { num_inference_steps: 4 } }, "trailing")).steps, 4);
  });

  for (const [what, value, message] of [
    ["not an object", [20], /is not a JSON object/],
    ["an unknown key", { steps: 20 }, /unknown keys \(steps\)/],
    ["steps 0", { num_inference_steps: 0 }, /num_inference_steps must be an integer from 1 to 1000/],
    ["fractional steps", { num_inference_steps: 2.5 }, /num_inference_steps must be an integer/],
    ["steps as a string", { num_inference_steps: "20" }, /num_inference_steps must be an integer/],
    ["negative guidance", { guidance_scale: -1 }, /guidance_scale must be a number from 0 to 50/],
    ["guidance as a string", { guidance_scale: "3" }, /guidance_scale must be a number/],
  ] as const) {
    test(`_easel_defaults with ${what} is a checkpoint error naming model_index.json`, () => {
      assert.throws(
        () => sd15Defaults(ckpt({ [CHECKPOINT_DEFAULTS_KEY]: value })),
        (e: unknown) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID" && /\/models\/x\/model_index\.json: _easel_defaults /.test(e.message) && message.test(e.message),
      );
    });
  }
});

/** The request bodies the public API pages show, field for field (string numbers included), used by the tests. */

/** specs/000: Monica Playground v2.5 curl example. */
export const MONICA_PLAYGROUND_EXAMPLE = {
  model: "playground-v2-5",
  prompt: "A beautiful sunset over the ocean",
  negative_prompt: "",
  count: 1,
  size: "1024x1024",
  step: 30,
  seed: "0",
  safety_check: false,
  cfg_scale: "7.0",
};

/** specs/003: Monica Stable Diffusion curl example (sd3_5 with the sdxl-only fields at their defaults). */
export const MONICA_SD_EXAMPLE = {
  model: "sd3_5",
  prompt: "An astronaut riding a rainbow unicorn, cinematic, dramatic",
  negative_prompt: "",
  seed: "42",
  size: "1024x1024",
  steps: 28,
  cfg_scale: "3.5",
  num_outputs: 1,
  output_quality: 90,
  scheduler: "K_EULER",
  num_inference_steps: 50,
};

/** specs/002: Segmind Playground v2.5 example body. */
export const SEGMIND_EXAMPLE = {
  prompt: "(solo), anthro, male, protogen, high detailed fur, smile, hyperdetailed,realistic",
  negative_prompt: "bad anatomy, bad hands, missing fingers,low quality,blurry",
  samples: 1,
  num_inference_steps: 25,
  guidance_scale: 3,
  seed: 36446545871,
  base64: false,
};

import assert from "node:assert/strict";
import { test } from "node:test";
import type { GenerationRequest } from "../../core/types.ts";
import { toPipelineParams } from "./request.ts";

const REQ: GenerationRequest = {
  model: "m",
  prompt: "p",
  negativePrompt: "np",
  prompt2: "p2",
  negativePrompt2: "np2",
  prompt3: "p3",
  negativePrompt3: "np3",
  n: 2,
  width: 64,
  height: 96,
  steps: 7,
  guidanceScale: 4.5,
  guidanceRescale: 0.3,
  scheduler: "euler",
  seed: 99,
  strength: 0.4,
  output: { format: "png" },
  partialImages: 2,
  clipSkip: 1,
  maxSequenceLength: 128,
  useT5: false,
};

test("every request field reaches the pipeline under its own name; the caller's seed and decoded image win", () => {
  const image = { data: new Float32Array(3 * 64 * 96), width: 64, height: 96 };
  const p = toPipelineParams(REQ, { seed: 5, initImage: image });
  assert.deepEqual(p, {
    prompt: "p",
    negativePrompt: "np",
    prompt2: "p2",
    negativePrompt2: "np2",
    prompt3: "p3",
    negativePrompt3: "np3",
    n: 2,
    width: 64,
    height: 96,
    steps: 7,
    guidanceScale: 4.5,
    guidanceRescale: 0.3,
    scheduler: "euler",
    seed: 5,
    initImage: image,
    strength: 0.4,
    clipSkip: 1,
    maxSequenceLength: 128,
    useT5: false,
    previews: 2,
  });
});

test("strength only with an init image; no previews unless asked", () => {
  const p = toPipelineParams({ ...REQ, partialImages: undefined }, { seed: 1 });
  assert.equal(p.strength, undefined);
  assert.equal(p.initImage, undefined);
  assert.equal(p.previews, 0);
});

test("the decoded inpainting mask reaches the pipeline with the init image", () => {
  const image = { data: new Float32Array(3 * 64 * 96), width: 64, height: 96 };
  const mask = { data: new Float32Array(64 * 96).fill(1), width: 64, height: 96 };
  const p = toPipelineParams(REQ, { seed: 5, initImage: image, mask });
  assert.equal(p.mask, mask);
  assert.equal(p.initImage, image);
});

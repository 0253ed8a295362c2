/** Capability-aware planning: what is fanned out, adapted with a warning, or refused naming the field. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EaselError } from "../../core/errors.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { planRequest, upstreamLimits } from "./capabilities.ts";
import type { Capabilities } from "./upstream.ts";

const CAPS: Capabilities = {
  sizes: { list: ["1024x1024", "768x1344"] },
  maxPerCall: 1,
  formats: ["jpeg"],
  negativePrompt: true,
  seed: { min: 1, max: 65535 },
  steps: { min: 20, max: 100 },
  guidance: { min: 1, max: 25 },
  schedulers: { euler: "K_EULER" },
  img2img: false,
  stream: false,
  user: false,
  easelFields: false,
};

const req = (over: Partial<GenerationRequest> = {}): GenerationRequest => ({
  model: "m",
  prompt: "a lighthouse",
  n: 1,
  width: 1024,
  height: 1024,
  output: { format: "png" },
  ...over,
});

const ctx = { provider: "seg", upstreamModel: "pg", randomInt: (min: number) => min + 41 };
const plan = (r: Partial<GenerationRequest>, caps: Partial<Capabilities> = {}) => planRequest(req(r), { ...CAPS, ...caps }, ctx);

function refuses(f: () => unknown, code: string, param: string): void {
  assert.throws(f, (e: unknown) => e instanceof EaselError && e.code === code && e.param === param && e.message.includes('provider "seg"'));
}

describe("planRequest", () => {
  test("n beyond one call fans out with consecutive seeds and one W_PARAM_ADAPTED", () => {
    const p = plan({ n: 3, seed: 100 });
    assert.deepEqual(p.calls.map((c) => [c.n, c.seed]), [[1, 100], [1, 101], [1, 102]]);
    assert.deepEqual(p.warnings.map((w) => [w.code, w.param]), [["W_PARAM_ADAPTED", "n"]]);
    const four = plan({ n: 5, seed: 100 }, { maxPerCall: 4 });
    assert.deepEqual(four.calls.map((c) => [c.n, c.seed]), [[4, 100], [1, 104]]);
  });

  test("no seed: the gateway picks one in the provider's range, so every image's seed is known", () => {
    assert.equal(plan({}).calls[0].seed, 42);
    assert.equal(plan({}, { seed: false }).calls[0].seed, undefined);
  });

  test("sizes, seeds, negative prompts, init images and Easel-only fields the upstream cannot take are 400s naming the field", () => {
    refuses(() => plan({ width: 512, height: 512 }), "E_INPUT_INVALID", "size");
    refuses(() => plan({ seed: 70000 }), "E_INPUT_INVALID", "seed");
    refuses(() => plan({ n: 2, seed: 65535 }), "E_INPUT_INVALID", "seed");
    refuses(() => plan({ seed: 5 }, { seed: false }), "E_NOT_SUPPORTED", "seed");
    refuses(() => plan({ negativePrompt: "blur" }, { negativePrompt: false }), "E_NOT_SUPPORTED", "negative_prompt");
    refuses(() => plan({ initImage: new Uint8Array(4) }), "E_NOT_SUPPORTED", "init_image");
    refuses(() => plan({ clipSkip: 1 }), "E_NOT_SUPPORTED", "clip_skip");
    refuses(() => plan({ steps: 10 }), "E_INPUT_INVALID", "steps");
    refuses(() => plan({ guidanceScale: 30 }), "E_INPUT_INVALID", "guidance_scale");
    assert.equal(plan({ negativePrompt: "" }, { negativePrompt: false }).calls.length, 1, "an empty negative prompt asks nothing");
  });

  test("knobs the upstream chooses itself, unknown scheduler names and partial images are adapted with warnings", () => {
    const p = plan({ steps: 30, guidanceScale: 5, scheduler: "dpmpp_2m_karras", user: "u1", partialImages: 2 }, { steps: false, guidance: false });
    assert.deepEqual(p.warnings.map((w) => w.param).sort(), ["guidance_scale", "partial_images", "scheduler", "steps", "user"]);
    assert.ok(p.warnings.every((w) => w.code === "W_PARAM_ADAPTED" && w.message.includes('provider "seg"')));
    assert.equal(p.calls[0].scheduler, undefined);
    assert.equal(p.calls[0].stream, false);
    assert.equal(plan({ scheduler: "euler" }).calls[0].scheduler, "K_EULER");
    assert.equal(plan({ scheduler: "edm_euler" }, { schedulers: "canonical" }).calls[0].scheduler, "edm_euler");
  });

  test("the format asked is the client's when the upstream has it, else its first; streams only in one call", () => {
    assert.equal(plan({}).calls[0].format, "jpeg");
    assert.equal(plan({ output: { format: "webp" } }, { formats: ["png", "webp"] }).calls[0].format, "webp");
    const s = plan({ partialImages: 2, n: 2 }, { stream: true, maxPerCall: 10 });
    assert.equal(s.calls[0].stream, true);
    assert.deepEqual(s.warnings, []);
  });
});

test("upstreamLimits: a size list is left to planRequest (its message lists the sizes); n stays open for fan-out", () => {
  const l = upstreamLimits(CAPS);
  assert.deepEqual([l.sizeMultiple, l.minSize, l.maxSize, l.maxImages, l.maxSteps], [8, 64, 2048, 10, 100]);
  assert.equal(l.maxClipSkip, 0);
  assert.equal(l.img2img, false);
});

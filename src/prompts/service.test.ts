/** The prompt service: styles around the (expanded) prompt, refusals before anything else runs, configured styles. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../config/index.ts";
import type { GenerationRequest } from "../core/types.ts";
import type { PromptExpander } from "./expansion.ts";
import { createPromptService } from "./service.ts";
import { BUILTIN_STYLES } from "./styles.ts";

const PLAYGROUND_FILTERS = [
  "cartoon", "vibrant_glass", "dreamy_stickers", "ultra_lighting", "watercolor", "macro_realism", "delicate_detail",
  "radiant_symmetry", "lush_illustration", "saturated_space", "neon_mecha", "ethereal_low_poly", "warm_box", "cinematic",
  "cinematic_warm", "wasteland", "flat_palette", "ominous_escape", "spielberg", "royalistic", "masterpiece", "wall_art",
  "haze", "black_and_white_3d", "cinematic_dimensions", "futuristic_illumination", "photorealistic", "cinematic_cold",
  "cute_low_poly_3d", "nikon_mode", "yellow_fog", "moody_impressions", "portrait", "hypersonic", "closeup", "old-timey",
];

const req: GenerationRequest = { model: "m", prompt: "a red circle", negativePrompt: "text", n: 1, width: 64, height: 64, output: { format: "png" } };

function fakeExpander(answer: (p: string) => string): PromptExpander & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async expand(p) {
      calls.push(p);
      return answer(p);
    },
    close: async () => undefined,
  };
}

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: { code?: string; message: string }) => e.code === code && pattern.test(e.message));
}

test("the built-in presets are exactly Playground's 36 prompt_filter names, each a template with {prompt} and a negative", () => {
  assert.deepEqual(
    BUILTIN_STYLES.map((s) => s.id),
    PLAYGROUND_FILTERS,
  );
  for (const s of BUILTIN_STYLES) {
    assert.equal(s.prompt.split("{prompt}").length, 2, s.id);
    assert.ok(s.negativePrompt.length > 0, s.id);
  }
});

test("a style wraps the prompt and puts its negative before the client's; the revised prompt is what the model gets", async () => {
  const svc = createPromptService({ config: loadConfig({ env: {}, flags: {} }) });
  const out = await svc.prepare(req, { style: "watercolor" });
  assert.equal(out.req.prompt, "watercolor painting of a red circle, soft washes, bleeding pigments, paper texture, loose brushwork");
  assert.equal(out.req.negativePrompt, "photo, 3d render, sharp digital lines, blurry, low quality, jpeg artifacts, watermark, text, text");
  assert.equal(out.revisedPrompt, out.req.prompt);
  assert.equal(out.style, "watercolor");
  assert.equal((await svc.prepare(req, {})).req.prompt, "a red circle");
  await rejects(svc.prepare(req, { style: "sepia" }), "E_INPUT_INVALID", /prompt_filter "sepia" is not a style/);
});

test("configured styles are added, and one with a built-in id replaces it", async () => {
  const config = loadConfig({
    env: {},
    flags: { prompts: { styles: [{ id: "blueprint", prompt: "blueprint drawing of {prompt}", negativePrompt: "color" }, { id: "cartoon", prompt: "{prompt}, toon" }] } },
  });
  const svc = createPromptService({ config });
  assert.equal(svc.styles().length, 37);
  assert.equal((await svc.prepare(req, { style: "blueprint" })).req.prompt, "blueprint drawing of a red circle");
  assert.equal((await svc.prepare({ ...req, negativePrompt: undefined }, { style: "cartoon" })).req.negativePrompt, undefined);
  assert.throws(() => loadConfig({ env: {}, flags: { prompts: { styles: [{ id: "x", prompt: "no slot" }] } } }), /must contain \{prompt\}/);
});

test("expansion: the model's prompt is styled and reported; without a provider the error says how to configure one", async () => {
  const config = loadConfig({ env: {}, flags: {} });
  const expander = fakeExpander((p) => `${p}, glowing, on black velvet`);
  const svc = createPromptService({ config, expander });
  const out = await svc.prepare(req, { expand: true, style: "closeup" });
  assert.equal(out.expandedPrompt, "a red circle, glowing, on black velvet");
  assert.equal(out.req.prompt, "close-up of a red circle, glowing, on black velvet, tight framing, fine surface detail, shallow depth of field");
  const none = createPromptService({ config });
  await rejects(none.prepare(req, { expand: true }), "E_NOT_SUPPORTED", /configure promptExpansion: \{provider, model\}/);
});

test("a refused prompt never reaches the language model, and an expanded prompt is checked too", async () => {
  const config = loadConfig({ env: {}, flags: {} });
  const expander = fakeExpander((p) => `${p} inside a casino, gambling chips`);
  const svc = createPromptService({ config, expander });
  await rejects(svc.prepare({ ...req, prompt: "a poker g4mbling table" }, { expand: true, rejectionTopics: ["gambling"] }), "E_PROMPT_UNSAFE", /prompt references the rejected topic "gambling"/);
  assert.equal(expander.calls.length, 0);
  await rejects(svc.prepare(req, { expand: true, rejectionTopics: ["gambling"] }), "E_PROMPT_UNSAFE", /expanded prompt references the rejected topic "gambling"/);
  assert.equal(expander.calls.length, 1);
});

test("verify_prompt_safety uses the built-in categories, or the configured ones instead", async () => {
  const svc = createPromptService({ config: loadConfig({ env: {}, flags: {} }) });
  await rejects(svc.prepare({ ...req, prompt: "a NUDE statue" }, { verifySafety: true }), "E_PROMPT_UNSAFE", /unsafe category "sexual"/);
  const custom = createPromptService({
    config: loadConfig({ env: {}, flags: { prompts: { safetyCategories: [{ id: "pets", description: "pets", terms: ["cat"] }] } } }),
  });
  await rejects(custom.prepare({ ...req, prompt: "two cats" }, { verifySafety: true }), "E_PROMPT_UNSAFE", /unsafe category "pets"/);
  assert.equal((await custom.prepare({ ...req, prompt: "a nude statue" }, { verifySafety: true })).req.prompt, "a nude statue");
});

/** OpenAI sizes on local models: which size is made, and the warning that says so. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { familyLimits } from "../../../test/helpers/models.ts";
import type { ModelInfo } from "../../core/types.ts";
import { chooseSize, isOpenAiModelName, nativeSizeAt, OPENAI_SIZES } from "./sizes.ts";

function model(width: number, limits = familyLimits("sd15")): ModelInfo {
  return { id: "m", family: "sd15", kind: "vp", backend: "local", aliases: [], defaults: { width, height: width, steps: 20, guidanceScale: 7 }, limits, created: 0 };
}

test("a model named by an OpenAI name makes each OpenAI size's aspect at its own pixel count, multiples of 8", () => {
  const m = model(512);
  const want: Record<string, [number, number]> = {
    "256x256": [512, 512],
    "512x512": [512, 512],
    "1024x1024": [512, 512],
    "1792x1024": [680, 384],
    "1024x1792": [384, 680],
    "1536x1024": [624, 416],
    "1024x1536": [416, 624],
  };
  for (const size of OPENAI_SIZES) {
    const [w, h] = size.split("x").map(Number);
    const c = chooseSize(m, { width: w, height: h }, { openAiName: true, n: 1, from: "size" });
    assert.deepEqual([c.size.width, c.size.height], want[size], size);
    assert.equal(c.warning?.code, size === "512x512" ? undefined : "W_SIZE_MAPPED", size);
    if (c.warning) assert.ok(c.warning.message.includes(size) && c.warning.param === "size");
  }
});

test("another model makes a size as asked when its limits accept it; an OpenAI size it cannot make is mapped, never refused", () => {
  const m = model(512);
  assert.deepEqual(chooseSize(m, { width: 1792, height: 1024 }, { openAiName: false, n: 1, from: "size" }), { size: { width: 1792, height: 1024 } });
  // A machine whose memory fits 512x512 but not 1792x1024.
  const small = model(512, { ...familyLimits("sd15"), memory: { weightBytes: 1e9, activationBytesPerPixel: 1536, machineBytes: 1e9 + 1536 * 600_000 } });
  const c = chooseSize(small, { width: 1792, height: 1024 }, { openAiName: false, n: 1, from: "size" });
  assert.deepEqual(c.size, { width: 680, height: 384 });
  assert.equal(c.warning?.code, "W_SIZE_MAPPED");
  // A size OpenAI never offers is left for the limits check to refuse with the allowed range.
  assert.deepEqual(chooseSize(small, { width: 2000, height: 1200 }, { openAiName: false, n: 1, from: "size" }), { size: { width: 2000, height: 1200 } });
});

test("the native size keeps within the model's limits; OpenAI names are matched case-insensitively", () => {
  const tiny = model(64, { ...familyLimits("sd15"), minSize: 64, sizeMultiple: 16 });
  assert.deepEqual(nativeSizeAt(tiny, 1792, 1024), { width: 80, height: 64 });
  for (const n of ["dall-e-2", "DALL-E-3", "gpt-image-1", "gpt-image-1.5"]) assert.ok(isOpenAiModelName(n), n);
  for (const n of ["sd15", undefined, null, "dall-e-4"]) assert.ok(!isOpenAiModelName(n), String(n));
});

test("a model served by an upstream provider gets OpenAI's sizes as asked, also under an OpenAI name", () => {
  const upstream = { ...model(1024), backend: "openai" };
  for (const openAiName of [true, false]) {
    assert.deepEqual(chooseSize(upstream, { width: 1536, height: 1024 }, { openAiName, n: 1, from: "size" }), { size: { width: 1536, height: 1024 } });
  }
});

/**
 * The local provider with the image safety checker (config.safety): a request's safetyCheck reaches the engine, a
 * flagged image comes back black with W_IMAGE_FLAGGED, no preview frame is sent while checking, and `always` checks
 * requests that did not ask on models that have a checker. The micro sd15 checkpoint with a tiny checker whose
 * thresholds (-1) flag every image.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import type { GenerationRequest } from "../../core/types.ts";
import { Engine } from "../../engine/engine.ts";
import { addTinySafetyChecker } from "../../models/testing/tiny-safety-checker.ts";
import { isRawImage, type ProviderEvent, type ProviderResult } from "../spec.ts";
import { createLocalProvider } from "./index.ts";

const req: GenerationRequest = { model: "m", prompt: "a red circle", n: 1, width: 64, height: 64, steps: 4, guidanceScale: 5, seed: 7, output: { format: "png" }, partialImages: 2 };

describe("local provider with the safety checker", () => {
  let tmp: string;
  let engine: Engine;
  let dir: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-local-safety-"));
    dir = join(tmp, "sd15");
    cpSync(resolve("test/fixtures/models/sd15"), dir, { recursive: true });
    addTinySafetyChecker(dir, { seed: 2, thresholds: { special: -1, concept: -1 } });
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  const black = (r: ProviderResult) => r.images.every((img) => isRawImage(img) && img.rgb.every((v) => v === 0));

  test("safetyCheck: black images, W_IMAGE_FLAGGED, no previews; without it the previews and the image are there", async () => {
    const local = createLocalProvider({ engine, modelDir: () => dir, safety: { onFlagged: "black", always: false } });
    const events: ProviderEvent[] = [];
    const checked = await local.generate({ ...req, safetyCheck: true }, { signal: new AbortController().signal, onEvent: (e) => events.push(e) });
    assert.ok(black(checked));
    assert.ok(checked.warnings.some((w) => w.code === "W_IMAGE_FLAGGED"));
    assert.equal(events.filter((e) => e.type === "preview").length, 0);
    const plainEvents: ProviderEvent[] = [];
    const plain = await local.generate(req, { signal: new AbortController().signal, onEvent: (e) => plainEvents.push(e) });
    assert.equal(black(plain), false);
    assert.ok(plainEvents.some((e) => e.type === "preview"));
  });

  test("safety.always checks a request that did not ask", async () => {
    const local = createLocalProvider({ engine, modelDir: () => dir, safety: { onFlagged: "black", always: true } });
    assert.ok(black(await local.generate(req, { signal: new AbortController().signal })));
  });
});

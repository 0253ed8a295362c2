/**
 * The image safety check inside the inference worker, on a copy of the micro sd15 checkpoint with a tiny safety checker
 * added (src/models/testing/tiny-safety-checker.ts). Thresholds are set so the outcome is known: -1 flags every image
 * (every cosine similarity exceeds it), 1 flags none.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { EaselError } from "../core/errors.ts";
import type { PipelineParams } from "../models/pipeline/family.ts";
import { addTinySafetyChecker, setSafetyThresholds, writeTinySafetyCheckerFolder } from "../models/testing/tiny-safety-checker.ts";
import { Engine } from "./engine.ts";

const MICRO = resolve("test/fixtures/models/sd15");
const params: PipelineParams = { prompt: "a red circle", n: 2, width: 64, height: 64, steps: 2, guidanceScale: 5, seed: 42 };

function isCode(code: string, pattern: RegExp) {
  return (e: unknown) => e instanceof EaselError && e.code === code && pattern.test(e.message) && e.param === "safety_check";
}

describe("safety check in the engine worker", () => {
  let engine: Engine;
  let tmp: string;
  let withChecker: string;
  let standalone: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-safety-engine-"));
    withChecker = join(tmp, "sd15-checked");
    cpSync(MICRO, withChecker, { recursive: true });
    addTinySafetyChecker(withChecker, { seed: 5, thresholds: { special: -1, concept: -1 } });
    standalone = join(tmp, "checker");
    writeTinySafetyCheckerFolder(standalone, { seed: 5, thresholds: { special: 1, concept: 1 } });
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test("flagged images come back black with W_IMAGE_FLAGGED; the same run unchecked is not black", async () => {
    const plain = await engine.run(withChecker, params);
    assert.ok(plain.images.every((img) => img.rgb.some((v) => v !== 0)));
    const checked = await engine.run(withChecker, params, { safety: { requested: true, onFlagged: "black" } });
    assert.equal(checked.images.length, 2);
    for (const img of checked.images) {
      assert.deepEqual([img.width, img.height], [64, 64]);
      assert.ok(img.rgb.every((v) => v === 0));
    }
    const w = checked.warnings.find((x) => x.code === "W_IMAGE_FLAGGED");
    assert.match(w?.message ?? "", /image 1, 2 of 2/);
  });

  test("onFlagged refuse fails the run with E_PROMPT_UNSAFE; no image leaves the worker", async () => {
    await assert.rejects(engine.run(withChecker, params, { safety: { requested: true, onFlagged: "refuse" } }), isCode("E_PROMPT_UNSAFE", /flagged generated image 1, 2 of 2/));
  });

  test("a model without a checker: an error when asked, nothing when only configured to always check; a configured folder is used", async () => {
    await assert.rejects(engine.run(MICRO, params, { safety: { requested: true, onFlagged: "black" } }), isCode("E_NOT_SUPPORTED", /has no safety checker/));
    const always = await engine.run(MICRO, params, { safety: { requested: false, onFlagged: "black" } });
    assert.equal(always.warnings.some((x) => x.code === "W_IMAGE_FLAGGED"), false);
    // The standalone checker's thresholds (1) flag nothing: the images are the unchecked ones.
    const plain = await engine.run(MICRO, params);
    const viaFolder = await engine.run(MICRO, params, { safety: { requested: true, checkerDir: standalone, onFlagged: "black" } });
    assert.deepEqual(viaFolder.images.map((i) => Buffer.from(i.rgb).toString("base64")), plain.images.map((i) => Buffer.from(i.rgb).toString("base64")));
    // Thresholds of -1 on the same folder: every image flagged.
    setSafetyThresholds(standalone, -1, -1);
    await engine.release();
    const flagged = await engine.run(MICRO, params, { safety: { requested: true, checkerDir: standalone, onFlagged: "black" } });
    assert.ok(flagged.images.every((img) => img.rgb.every((v) => v === 0)));
  });
});

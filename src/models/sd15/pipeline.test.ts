import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { withinOneLevel } from "../../../test/helpers/images.ts";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import type { LoadedPipeline } from "../pipeline/family.ts";
import { requestBytes } from "../../core/limits.ts";
import { sd15Limits } from "./config.ts";
import { loadSd15 } from "./pipeline.ts";

const MODEL = "test/fixtures/models/sd15";
const CASES = "test/fixtures/generate/sd15";


describe("StableDiffusionPipeline parity (micro sd15 checkpoint)", () => {
  let pipe: LoadedPipeline;
  before(async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "easel-sd15-"));
    pipe = await loadSd15(loadCheckpoint(MODEL), { executionProvider: "cpu", intraOpThreads: 1, cacheDir });
  });
  after(() => pipe?.release());

  for (const name of ["txt2img_pndm_64x64", "txt2img_euler_a_96x64"]) {
    test(name, async () => {
      const dir = join(CASES, name);
      const c = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
      const inp = c.inputs;
      const scheduler = inp.scheduler_name.startsWith("default") ? undefined : inp.scheduler_name;
      const steps: number[] = [];
      const out = await pipe.run(
        {
          prompt: inp.prompt,
          negativePrompt: inp.negative_prompt ?? undefined,
          n: 1,
          width: inp.width,
          height: inp.height,
          steps: inp.num_inference_steps,
          guidanceScale: inp.guidance_scale,
          scheduler,
          seed: 1,
          initLatents: readRefFloat32(join(dir, "init_latents")).data,
          stepNoise: inp.step_noise ? readRefFloat32(join(dir, "step_noise")).data : undefined,
        },
        { onStep: (s) => steps.push(s) },
      );
      const ref = readRefFloat32(join(dir, "final_latents"));
      assert.deepEqual(out.latentShape, ref.shape);
      expectClose(out.latents, ref.data, { atol: 1e-3, rtol: 0, what: "final_latents" });
      assert.ok((await withinOneLevel(out.images[0], join(dir, "image.png"))) >= 0.999);
      assert.equal(steps.at(-1), c.denoiser_calls);
    });
  }

  test("a seed reproduces the same image, another seed does not", async () => {
    const p = { prompt: "a red cube", n: 2, width: 64, height: 64, steps: 3, seed: 42 };
    const a = await pipe.run(p);
    const b = await pipe.run(p);
    const c = await pipe.run({ ...p, seed: 43 });
    assert.deepEqual(a.latents, b.latents);
    assert.notDeepEqual(a.latents, c.latents);
    assert.equal(a.images.length, 2);
    assert.notDeepEqual(a.images[0].rgb, a.images[1].rgb);
  });

  test("a seed draws exactly what torch.Generator('cpu').manual_seed(seed) draws, in diffusers' order", async () => {
    // diffusers: the initial latents are one randn call, then each euler_a step draws once from the same generator.
    const seq = readRefFloat32("test/fixtures/rng/sequential_seed42_3x_1x4x8x8").data; // 3 consecutive [1,4,8,8] draws
    const p = { prompt: "a lighthouse", n: 1, width: 64, height: 64, steps: 2, scheduler: "euler_a" };
    const fromSeed = await pipe.run({ ...p, seed: 42 });
    const injected = await pipe.run({ ...p, seed: 7, initLatents: seq.slice(0, 256), stepNoise: seq.slice(256) });
    assert.deepEqual(fromSeed.latents, injected.latents);
    // two images per prompt: one randn([2,4,8,8]) call
    const batch = readRefFloat32("test/fixtures/rng/pipeline_batch2_seed42").data;
    const two = await pipe.run({ ...p, scheduler: "euler", n: 2, seed: 42 });
    const twoInjected = await pipe.run({ ...p, scheduler: "euler", n: 2, seed: 9, initLatents: batch });
    assert.deepEqual(two.latents, twoInjected.latents);
  });

  test("img2img runs from an init image with strength", async () => {
    const data = new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i / 50));
    const out = await pipe.run({ prompt: "x", n: 1, steps: 4, seed: 7, strength: 0.5, initImage: { data, width: 64, height: 64 } });
    assert.equal(out.images[0].width, 64);
    assert.ok(out.latents.every(Number.isFinite));
  });

  test("img2img strength 0 reproduces the init image: no denoising step, the encoded latents decoded as they are", async () => {
    const data = new Float32Array(3 * 64 * 64).map((_, i) => Math.sin(i / 50));
    const initImage = { data, width: 64, height: 64 };
    let steps = 0;
    const a = await pipe.run({ prompt: "a cat", n: 1, steps: 4, seed: 7, strength: 0, initImage }, { onStep: () => steps++ });
    const b = await pipe.run({ prompt: "a dog", n: 1, steps: 4, seed: 7, strength: 0, initImage });
    assert.equal(steps, 0);
    assert.deepEqual(a.latents, b.latents, "the prompt plays no part");
    const c = await pipe.run({ prompt: "a cat", n: 1, steps: 4, seed: 7, strength: 0.5, initImage });
    assert.notDeepEqual(a.latents, c.latents);
  });

  test("previews are emitted and cancellation stops the run", async () => {
    const frames: number[] = [];
    await pipe.run({ prompt: "x", n: 1, width: 64, height: 64, steps: 6, seed: 3, scheduler: "euler", previews: 2 }, {
      onPreview: (i, _s, imgs) => {
        frames.push(i);
        assert.equal(imgs[0].width, 64);
      },
    });
    assert.deepEqual(frames, [0, 1]);
    let calls = 0;
    await assert.rejects(
      pipe.run({ prompt: "x", n: 1, width: 64, height: 64, steps: 6, seed: 3 }, { onStep: () => calls++, isCancelled: () => calls >= 2 }),
      (e: Error) => e.name === "AbortError",
    );
  });

  test("clip_skip changes the conditioning; out of range is rejected", async () => {
    const p = { prompt: "a red cube", n: 1, width: 64, height: 64, steps: 2, seed: 5 };
    const base = await pipe.run(p);
    const skip0 = await pipe.run({ ...p, clipSkip: 0 });
    const skip1 = await pipe.run({ ...p, clipSkip: 1 });
    assert.deepEqual(skip0.latents, base.latents);
    assert.notDeepEqual(skip1.latents, base.latents);
    await assert.rejects(pipe.run({ ...p, clipSkip: 3 }), (e: unknown) => e instanceof EaselError && e.param === "clip_skip");
  });

  test("bad sizes and steps are rejected with the field named", async () => {
    for (const [p, param] of [
      [{ width: 60 }, "width"],
      [{ height: 0 }, "height"],
      [{ steps: 0 }, "steps"],
    ] as const) {
      await assert.rejects(pipe.run({ prompt: "x", n: 1, width: 64, height: 64, seed: 1, ...p }), (e: unknown) => e instanceof EaselError && e.param === param);
    }
  });
});

describe("memory plan (micro sd15 checkpoint)", () => {
  const ckpt = loadCheckpoint(MODEL);
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-sd15-mem-"));
  const model = sd15Limits(ckpt).memory!;
  const params = { prompt: "a cat", negativePrompt: "blur", n: 2, width: 64, height: 64, steps: 3, seed: 11, guidanceScale: 6 };

  test("guidance runs as two calls when only batch n fits, with the same numbers; a request that fits nowhere is refused with its figure", async () => {
    const plain = await loadSd15(ckpt, { executionProvider: "cpu", intraOpThreads: 1, cacheDir });
    // Room for batch n = 2 at 64x64 but not for the CFG batch of 4.
    const totalBytes = requestBytes(model, 64, 64, 3) + 1024 ** 3;
    const tight = await loadSd15(ckpt, { executionProvider: "cpu", intraOpThreads: 1, cacheDir, memory: { totalBytes, freeBytes: totalBytes } });
    try {
      const [stepsA, stepsB]: number[][] = [[], []];
      const a = await plain.run(params, { onStep: (s) => stepsA.push(s) });
      const b = await tight.run(params, { onStep: (s) => stepsB.push(s) });
      expectClose(b.latents, a.latents, { atol: 1e-5 });
      assert.deepEqual(stepsB, stepsA, "progress counts denoiser steps, however many network calls each takes");
      assert.ok(b.warnings.some((w) => w.code === "W_MEMORY_PLAN"), "guidance was split");
      assert.ok(!a.warnings.some((w) => w.code === "W_MEMORY_PLAN"));
      await assert.rejects(
        tight.run({ ...params, width: 128, height: 128 }),
        (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && /needs about .* GiB of memory/.test(e.message),
      );
    } finally {
      await Promise.all([plain.release(), tight.release()]);
    }
  });
});

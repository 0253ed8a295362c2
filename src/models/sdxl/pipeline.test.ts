/**
 * SDXL / SDXL-Turbo family: detection and defaults on copies of the micro checkpoint carrying the published
 * configs, fp16 variant files, Turbo's single unguided step, img2img, guidance rescale and input validation.
 * Numerical parity with diffusers is in ./parity.test.ts.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose, readRefFloat32 } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import { readSafetensorsHeader, readTensorData, writeSafetensors } from "../../graph/safetensors.ts";
import { createSession } from "../../runtime/session.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import { latentScaling, posteriorFromMoments, prepareVaeEncoder, samplePosterior } from "../components/vae.ts";
import { familyFor } from "../index.ts";
import type { LoadedPipeline } from "../pipeline/family.ts";
import { floatToHalfBits } from "../testing/tiny-checkpoint.ts";
import { sdxlFamily } from "./index.ts";

const MODEL = "test/fixtures/models/sdxl";
const PUBLISHED = "test/fixtures/generate/sdxl/published-configs";
const CASE = "test/fixtures/generate/sdxl/txt2img_euler_64x64";
const work = mkdtempSync(join(tmpdir(), "easel-sdxl-family-"));
const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: join(work, "cache") };

/** A copy of the micro checkpoint with a published scheduler config and UNet sample_size. */
function publishedCopy(name: string, scheduler: string, sampleSize: number): string {
  const dir = join(work, name);
  cpSync(MODEL, dir, { recursive: true });
  cpSync(join(PUBLISHED, scheduler), join(dir, "scheduler", "scheduler_config.json"));
  const unetConfig = join(dir, "unet", "config.json");
  writeFileSync(unetConfig, JSON.stringify({ ...JSON.parse(readFileSync(unetConfig, "utf8")), sample_size: sampleSize }));
  return dir;
}

/** Writes `<stem>.fp16.safetensors` beside every weight file, as the published repositories ship them. */
function addFp16Variants(dir: string): void {
  for (const component of ["text_encoder", "text_encoder_2", "unet", "vae"]) {
    for (const file of readdirSync(join(dir, component)).filter((f) => f.endsWith(".safetensors") && !f.includes(".fp16."))) {
      const path = join(dir, component, file);
      const tensors = readSafetensorsHeader(path).entries.map((e) => {
        const half = Uint16Array.from(readTensorData(e), floatToHalfBits);
        return { name: e.name, dtype: "F16" as const, shape: e.shape, data: new Uint8Array(half.buffer) };
      });
      writeSafetensors(path.replace(/\.safetensors$/, ".fp16.safetensors"), tensors);
    }
  }
}

describe("SDXL family", () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  test("detection, aliases and defaults from the published SDXL base and Turbo configs", () => {
    const base = loadCheckpoint(publishedCopy("base", "stable-diffusion-xl-base-1.0.scheduler_config.json", 128));
    assert.equal(familyFor(base), sdxlFamily);
    assert.deepEqual(sdxlFamily.aliases(base), ["sdxl", "stable-diffusion-xl"]);
    assert.deepEqual(sdxlFamily.defaults(base), { width: 1024, height: 1024, steps: 50, guidanceScale: 5 });

    const turbo = loadCheckpoint(publishedCopy("turbo", "sdxl-turbo.scheduler_config.json", 64));
    assert.equal(familyFor(turbo), sdxlFamily);
    assert.deepEqual(sdxlFamily.aliases(turbo), ["sdxl-turbo"]);
    assert.deepEqual(sdxlFamily.defaults(turbo), { width: 512, height: 512, steps: 1, guidanceScale: 0 });
  });

  describe("with the micro checkpoint loaded", () => {
    let pipe: LoadedPipeline;
    before(async () => {
      pipe = await sdxlFamily.load(loadCheckpoint(MODEL), rt);
    });
    after(() => pipe?.release());

    test("bad sizes and values are rejected with E_INPUT_INVALID naming the field", async () => {
      for (const [p, param] of [
        [{ width: 60 }, "width"],
        [{ height: 100 }, "height"],
        [{ steps: 0 }, "steps"],
        [{ guidanceRescale: 1.5 }, "guidance_rescale"],
      ] as const) {
        await assert.rejects(
          pipe.run({ prompt: "x", n: 1, width: 64, height: 64, steps: 2, seed: 1, ...p }),
          (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === param,
        );
      }
    });

    test("guidance_rescale changes the guided prediction, 0 leaves it as plain CFG; previews", async () => {
      const p = { prompt: "a cat", negativePrompt: "blurry", n: 1, width: 64, height: 64, steps: 3, seed: 11 };
      const plain = await pipe.run(p);
      const zero = await pipe.run({ ...p, guidanceRescale: 0 });
      const frames: number[] = [];
      const rescaled = await pipe.run({ ...p, guidanceRescale: 0.7, previews: 1 }, { onPreview: (i, _s, imgs) => frames.push(i, imgs[0].width) });
      assert.deepEqual(frames, [0, 64]);
      assert.deepEqual(zero.latents, plain.latents);
      assert.notDeepEqual(rescaled.latents, plain.latents);
      assert.ok(rescaled.latents.every(Number.isFinite));
    });

    test("img2img: int(steps * strength) denoiser calls (default strength 0.3), and at strength 0.02 the output follows the encoded image", async () => {
      const W = 64;
      const H = 64;
      const data = new Float32Array(3 * W * H).map((_, i) => 0.8 * Math.sin(i / 37));
      const initImage = { data, width: W, height: H };
      let calls = 0;
      const d = await pipe.run({ prompt: "a cat", n: 1, steps: 10, seed: 5, initImage }, { onStep: () => calls++ });
      assert.equal(calls, 3);
      assert.deepEqual(d.latentShape, [1, 4, 8, 8]);
      assert.equal(d.images[0].width, W);
      assert.ok(d.latents.every(Number.isFinite));

      // One step from t=1 (sigma 0.041; 50 steps, strength 0.02): out = z + sigma * (noise - eps), with z the posterior
      // sample drawn first from the seed's generator and scaled by 0.13025. Between two init images with the same
      // seed the noise is shared, so the outputs differ as their encodings do, up to sigma times the change in eps.
      const enc = prepareVaeEncoder(join(MODEL, "vae"), rt);
      const session = await createSession(enc.modelPath, rt);
      const encoded = async (img: Float32Array) => {
        const moments = (await session.run({ image: { data: img, shape: [1, 3, H, W] } })).moments;
        const sample = samplePosterior(posteriorFromMoments(moments.data as Float32Array, moments.shape), new TorchGenerator(5));
        return latentScaling(enc.config).fromVaeOutput(sample, 4, 64);
      };
      const other = new Float32Array(3 * W * H).map((_, i) => 0.8 * Math.cos(i / 23));
      const [zA, zB] = [await encoded(data), await encoded(other)];
      await session.release();
      const run = async (img: Float32Array) =>
        (await pipe.run({ prompt: "a cat", n: 1, steps: 50, strength: 0.02, guidanceScale: 0, seed: 5, initImage: { data: img, width: W, height: H } })).latents;
      const [fA, fB] = [await run(data), await run(other)];
      const dz = zA.map((v, i) => v - zB[i]);
      assert.ok(dz.some((v) => Math.abs(v) > 0.1), "the two init images must encode differently");
      expectClose(
        fA.map((v, i) => v - fB[i]),
        dz,
        { atol: 0.02, what: "img2img output difference vs encoded difference" },
      );
    });

    test("SDXL-Turbo: one unguided Euler-ancestral step from the published Turbo scheduler", async () => {
      const turboCkpt = loadCheckpoint(publishedCopy("turbo-run", "sdxl-turbo.scheduler_config.json", 8));
      const turbo = await sdxlFamily.load(turboCkpt, rt);
      try {
        assert.deepEqual(turbo.defaults, { width: 64, height: 64, steps: 1, guidanceScale: 0 });
        let calls = 0;
        const out = await turbo.run({ prompt: "a cat", negativePrompt: "dog", n: 2, seed: 3 }, { onStep: () => calls++ });
        assert.equal(calls, 1);
        assert.deepEqual(out.latentShape, [2, 4, 8, 8]);
        assert.ok(out.latents.every(Number.isFinite));
        assert.deepEqual(out.warnings.map((w) => w.param), ["negative_prompt"]);
      } finally {
        await turbo.release();
      }
    });
  });

  test("fp16 variant files: loaded beside the fp32 files on request, and alone when only they exist", async () => {
    const dir = publishedCopy("fp16", "stable-diffusion-xl-base-1.0.scheduler_config.json", 8);
    addFp16Variants(dir);
    const c = JSON.parse(readFileSync(join(CASE, "case.json"), "utf8").replace(/-?Infinity|NaN/g, "null")).inputs;
    const params = {
      prompt: c.prompt,
      negativePrompt: c.negative_prompt,
      n: 1,
      width: 64,
      height: 64,
      steps: c.num_inference_steps,
      guidanceScale: c.guidance_scale,
      seed: 1,
      initLatents: readRefFloat32(join(CASE, "init_latents")).data,
    };
    const ref = readRefFloat32(join(CASE, "final_latents")).data;
    const run = async (ckptDir: string, variant?: "fp16") => {
      const ckpt = loadCheckpoint(ckptDir, { variant });
      const p = await sdxlFamily.load(ckpt, rt);
      try {
        return { variants: Object.values(ckpt.components).flatMap((x) => (x ? [x.variant] : [])), latents: (await p.run(params)).latents };
      } finally {
        await p.release();
      }
    };
    const half = await run(dir, "fp16");
    assert.deepEqual(half.variants, ["fp16", "fp16", "fp16", "fp16"]);
    // fp16-rounded weights: near the fp32 reference, but not equal to it (the fp16 files were used).
    let maxRef = 0;
    for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
    expectClose(half.latents, ref, { atol: 0.05 * maxRef, what: "final latents with fp16 weights" });
    assert.ok(half.latents.some((v, i) => Math.abs(v - ref[i]) > 1e-3));

    for (const component of ["text_encoder", "text_encoder_2", "unet", "vae"]) {
      for (const f of readdirSync(join(dir, component)).filter((x) => x.endsWith(".safetensors") && !x.includes(".fp16."))) rmSync(join(dir, component, f));
    }
    const only = await run(dir);
    assert.deepEqual(only.latents, half.latents);
  });
});

/**
 * Playground v2.5 family: detection and defaults from the published configs, its hosted sizes, img2img through the
 * latents_mean/std encoding, and input validation. Numerical parity with diffusers is in
 * ./parity.test.ts.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import { createSession } from "../../runtime/session.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import { latentScaling, posteriorFromMoments, prepareVaeEncoder, samplePosterior } from "../components/vae.ts";
import { familyFor } from "../index.ts";
import type { LoadedPipeline } from "../pipeline/family.ts";
import { resolveParams } from "../pipeline/run.ts";
import { playgroundFamily } from "./index.ts";
import { PLAYGROUND_SIZES } from "./playground.ts";

const MODEL = "test/fixtures/models/playground";
const work = mkdtempSync(join(tmpdir(), "easel-playground-family-"));
const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: join(work, "cache") };

describe("Playground v2.5 family", () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  test("detection, aliases and defaults from the published configs", () => {
    const dir = join(work, "published");
    cpSync(MODEL, dir, { recursive: true });
    cpSync(
      "test/fixtures/generate/playground/published-configs/playground-v2.5-1024px-aesthetic.scheduler_config.json",
      join(dir, "scheduler", "scheduler_config.json"),
    );
    const unetConfig = join(dir, "unet", "config.json");
    writeFileSync(unetConfig, JSON.stringify({ ...JSON.parse(readFileSync(unetConfig, "utf8")), sample_size: 128 }));
    const ckpt = loadCheckpoint(dir);
    assert.equal(familyFor(ckpt), playgroundFamily);
    assert.deepEqual(playgroundFamily.aliases(ckpt), ["playground-v2.5", "playground-v2-5", "Playground_v2.5", "playground-v2.5-1024px-aesthetic"]);
    const d = playgroundFamily.defaults(ckpt);
    assert.deepEqual(d, { width: 1024, height: 1024, steps: 50, guidanceScale: 3 });
    // The hosted sizes are valid requests; a size off the multiple of 8 is not.
    for (const s of PLAYGROUND_SIZES) assert.deepEqual(resolveParams({ prompt: "x", n: 1, seed: 1, ...s }, d, playgroundFamily.limits(ckpt)).width, s.width);
    assert.throws(
      () => resolveParams({ prompt: "x", n: 1, seed: 1, width: 1020, height: 1024 }, d, playgroundFamily.limits(ckpt)),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "width",
    );
  });

  describe("with the micro checkpoint loaded", () => {
    let pipe: LoadedPipeline;
    before(async () => {
      pipe = await playgroundFamily.load(loadCheckpoint(MODEL), rt);
    });
    after(() => pipe?.release());

    test("a size that is not a multiple of 8 gives E_INPUT_INVALID", async () => {
      await assert.rejects(
        pipe.run({ prompt: "x", n: 1, width: 64, height: 68, steps: 2, seed: 1 }),
        (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "height",
      );
    });

    test("img2img: int(steps * strength) calls, and one step from sigma 0.002 returns the image's latents_mean/std encoding", async () => {
      const W = 96;
      const H = 64;
      const data = new Float32Array(3 * W * H).map((_, i) => 0.8 * Math.sin(i / 37));
      const initImage = { data, width: W, height: H };
      let calls = 0;
      const d = await pipe.run({ prompt: "a cat", n: 1, steps: 10, seed: 5, initImage }, { onStep: () => calls++ });
      assert.equal(calls, 3); // StableDiffusionXLImg2ImgPipeline's default strength 0.3
      assert.deepEqual(d.latentShape, [1, 4, 8, 12]);
      assert.equal(d.images[0].width, W);
      assert.ok(d.latents.every(Number.isFinite));

      // EDM DPM-Solver++ Karras, 50 steps, strength 0.02: one first-order step from sigma 0.002 to 0, so
      // out = c_skip x + c_out F with c_skip ~ 1 - 1.6e-5 and c_out ~ 0.002: the noised latents' clean part z, the
      // posterior sample (the generator's first draw) mapped by (x - mean) * 0.5 / std.
      const out = await pipe.run({ prompt: "a cat", n: 1, steps: 50, strength: 0.02, seed: 5, initImage });
      const enc = prepareVaeEncoder(join(MODEL, "vae"), rt);
      const session = await createSession(enc.modelPath, rt);
      const moments = (await session.run({ image: { data, shape: [1, 3, H, W] } })).moments;
      await session.release();
      const z = latentScaling(enc.config).fromVaeOutput(
        samplePosterior(posteriorFromMoments(moments.data as Float32Array, moments.shape), new TorchGenerator(5)),
        4,
        96,
      );
      assert.ok(z.some((v) => Math.abs(v) > 0.1));
      expectClose(out.latents, z, { atol: 0.01, what: "img2img at strength 0.02 vs the encoded image" });
    });
  });
});

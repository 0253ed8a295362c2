/**
 * Inpainting against diffusers' rule, computed step by step in this file from the raw networks (text encoder, UNet,
 * VAE encoder) and the Euler update, independently of the run loop:
 * - StableDiffusionInpaintPipeline with a 4-channel UNet: prepare_latents (init image posterior sample, noise,
 *   `noise * init_noise_sigma` at strength 1 or `add_noise(image_latents, noise, t_start)`), then prepare_mask_latents
 *   (the masked image's posterior sample), then after every scheduler step `latents = (1 - mask) * init_latents_proper
 *   + mask * latents` with init_latents_proper noised to timesteps[i + 1] (unnoised after the last step);
 * - an inpainting UNet (in_channels 9): the UNet reads cat([scaled latents, mask, masked-image latents]) and nothing
 *   is blended.
 * The micro SD1.5 checkpoint (test/fixtures/models/sd15) and a tiny inpainting checkpoint from the project's seeded
 * generator, 64x64 (8x8 latents).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { expectClose } from "../../../test/helpers/tensors.ts";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession, type SessionTuning } from "../../runtime/session.ts";
import { planSampling } from "../../samplers/index.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import { prepareClipTextModel } from "../components/clip-text.ts";
import { sessionArgs } from "../components/component.ts";
import { prepareUnetModel } from "../components/unet.ts";
import { prepareVaeEncoder } from "../components/vae.ts";
import { loadSd15 } from "../sd15/pipeline.ts";
import { loadSdxl } from "../sdxl/pipeline.ts";
import { writeTinyCheckpoint } from "../testing/tiny-checkpoint.ts";
import { loadClipTokenizer } from "../text/clip-tokenizer.ts";
import type { LoadedPipeline } from "./family.ts";

const W = 64;
const H = 64;
const C = 4;
const PLANE = (W / 8) * (H / 8);
const PROMPT = "a red cube";

/** A smooth colour pattern in [-1, 1], CHW. */
function testImage(): Float32Array {
  const img = new Float32Array(3 * W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      img[y * W + x] = Math.sin(x / 7);
      img[W * H + y * W + x] = Math.cos(y / 5);
      img[2 * W * H + y * W + x] = (x + y) / (W + H) - 0.5;
    }
  }
  return img;
}

/** 1 (repaint) in the left half and a square at the bottom right, 0 (keep) elsewhere: [H, W]. */
function testMask(): Float32Array {
  const m = new Float32Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) m[y * W + x] = x < 24 || (x >= 48 && y >= 48) ? 1 : 0;
  return m;
}

/** The raw networks of a checkpoint, opened here rather than through the family's pipeline. */
interface Nets {
  encodePrompt(text: string): Promise<Float32Array>;
  unet: ModelSession;
  vaeEncoder: ModelSession;
  scalingFactor: number;
  scheduler: Record<string, unknown>;
}

async function openNets(dir: string, cacheDir: string): Promise<Nets> {
  const opts = { cacheDir, executionProvider: "cpu" as const };
  const session = (p: string, tuning?: SessionTuning) => createSession(p, { executionProvider: "cpu", intraOpThreads: 1, ...tuning });
  const tokenizer = loadClipTokenizer(join(dir, "tokenizer"));
  const textEncoder = await session(prepareClipTextModel(join(dir, "text_encoder"), opts).modelPath);
  const vae = prepareVaeEncoder(join(dir, "vae"), opts);
  return {
    async encodePrompt(text) {
      const ids = tokenizer.encodeForModel(text).ids;
      const out = await textEncoder.run({ input_ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } }, ["last_hidden_state"]);
      return out.last_hidden_state.data as Float32Array;
    },
    unet: await session(prepareUnetModel(join(dir, "unet"), opts).modelPath),
    vaeEncoder: await session(...sessionArgs(vae)), // as the pipelines open it, so its latents are the same bits
    scalingFactor: vae.config.scalingFactor,
    scheduler: loadCheckpoint(dir).schedulerConfig,
  };
}

/** retrieve_latents(vae.encode(image), generator) * scaling_factor: mean + exp(logvar / 2) * randn, logvar clamped. */
async function encodeSample(nets: Nets, rgb: Float32Array, gen: TorchGenerator): Promise<Float32Array> {
  const moments = (await nets.vaeEncoder.run({ image: { data: rgb, shape: [1, 3, H, W] } })).moments.data as Float32Array;
  const eps = gen.randn([1, C, H / 8, W / 8]);
  const out = new Float32Array(C * PLANE);
  for (let i = 0; i < out.length; i++) {
    const logvar = Math.min(20, Math.max(-30, moments[C * PLANE + i]));
    out[i] = Math.fround(moments[i] + Math.fround(Math.exp(0.5 * logvar)) * eps[i]) * nets.scalingFactor;
  }
  return out;
}

/** F.interpolate(mask, size=(h, w)) (nearest): latent cell (y, x) takes pixel (8y, 8x). */
function latentMask(mask: Float32Array): Float32Array {
  const out = new Float32Array(PLANE);
  for (let y = 0; y < H / 8; y++) for (let x = 0; x < W / 8; x++) out[y * (W / 8) + x] = mask[8 * y * W + 8 * x];
  return out;
}

/** diffusers' inpaint __call__ with EulerDiscreteScheduler, guidance_scale 1 (no CFG), batch 1, written out. */
async function diffusersInpaint(
  nets: Nets,
  o: { seed: number; steps: number; strength: number; image: Float32Array; mask: Float32Array; nineChannel: boolean },
): Promise<Float32Array> {
  const startStep = o.steps - Math.min(Math.trunc(o.steps * o.strength), o.steps);
  const plan = planSampling(nets.scheduler, "euler", o.steps, { startStep });
  const { sigmas, timesteps } = plan;
  const strengthMax = o.strength === 1;
  const gen = new TorchGenerator(o.seed);
  // prepare_latents: image latents when the UNet has 4 channels or strength < 1, then the noise.
  const imageLatents = !o.nineChannel || !strengthMax ? await encodeSample(nets, o.image, gen) : undefined;
  const noise = gen.randn([1, C, H / 8, W / 8]);
  let x = new Float32Array(C * PLANE);
  for (let i = 0; i < x.length; i++) {
    x[i] = strengthMax ? noise[i] * Math.fround(plan.initNoiseSigma) : (imageLatents as Float32Array)[i] + sigmas[startStep] * noise[i];
  }
  // prepare_mask_latents: masked_image = image * (mask < 0.5), encoded with the generator.
  const masked = o.image.map((v, i) => (o.mask[i % (W * H)] < 0.5 ? v : 0));
  const maskedLatents = await encodeSample(nets, masked, gen);
  const m = latentMask(o.mask);
  const context = await nets.encodePrompt(PROMPT);
  for (let i = startStep; i < timesteps.length; i++) {
    const sigma = sigmas[i];
    const scaled = x.map((v) => v / Math.sqrt(sigma * sigma + 1));
    const sample = o.nineChannel ? Float32Array.of(...scaled, ...m, ...maskedLatents) : scaled;
    const eps = (
      await nets.unet.run(
        {
          sample: { data: sample, shape: [1, o.nineChannel ? 2 * C + 1 : C, H / 8, W / 8] },
          timestep: { data: Float32Array.of(timesteps[i]), shape: [1] },
          encoder_hidden_states: { data: context, shape: [1, context.length / 32, 32] },
        },
        ["out_sample"],
      )
    ).out_sample.data as Float32Array;
    // EulerDiscreteScheduler.step: x0 = x - σ·ε, d = (x - x0) / σ, x += d · (σ_next - σ).
    x = x.map((v, j) => v + ((v - (v - sigma * eps[j])) / sigma) * (sigmas[i + 1] - sigma));
    if (!o.nineChannel) {
      const img = imageLatents as Float32Array;
      for (let j = 0; j < x.length; j++) {
        const proper = i < timesteps.length - 1 ? img[j] + sigmas[i + 1] * noise[j] : img[j];
        const mj = m[j % PLANE];
        x[j] = (1 - mj) * proper + mj * x[j];
      }
    }
  }
  return x;
}

const image = testImage();
const mask = testMask();

/** A request to inpaint the test image under `o.mask` (the test mask unless given), W x H. */
function inpaintRequest(o: { n?: number; steps: number; guidanceScale: number; scheduler: string; seed: number; strength?: number; mask?: Float32Array }) {
  return {
    prompt: PROMPT,
    n: o.n ?? 1,
    width: W,
    height: H,
    steps: o.steps,
    guidanceScale: o.guidanceScale,
    scheduler: o.scheduler,
    seed: o.seed,
    ...(o.strength === undefined ? {} : { strength: o.strength }),
    initImage: { data: image, width: W, height: H },
    mask: { data: o.mask ?? mask, width: W, height: H },
  };
}

/**
 * Asserts that in each of the `n` images of `latents` every latent outside the test mask is exactly the init image's,
 * and returns the largest change inside it.
 */
function assertKeptExactly(latents: Float32Array, imageLatents: Float32Array, n: number): number {
  const m = latentMask(mask);
  let repainted = 0;
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < C * PLANE; j++) {
      const v = latents[b * C * PLANE + j];
      if (m[j % PLANE] === 0) assert.equal(v, imageLatents[j], `kept latent ${b}/${j}`);
      else repainted = Math.max(repainted, Math.abs(v - imageLatents[j]));
    }
  }
  return repainted;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe("inpainting, 4-channel UNet (micro sd15): diffusers' blend after every step", () => {
  const MODEL = "test/fixtures/models/sd15";
  let cacheDir: string;
  let pipe: LoadedPipeline;
  let nets: Nets;
  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), "easel-inpaint-"));
    pipe = await loadSd15(loadCheckpoint(MODEL), { executionProvider: "cpu", intraOpThreads: 1, cacheDir });
    nets = await openNets(MODEL, cacheDir);
  });
  after(async () => {
    await pipe?.release();
    await Promise.all([nets?.unet.release(), nets?.vaeEncoder.release()]);
    rmSync(cacheDir, { recursive: true, force: true });
  });

  for (const strength of [1, 0.5]) {
    test(`strength ${strength}: the run loop matches the step-by-step formula; the blend on the other side of the mask does not`, async () => {
      const out = await pipe.run(inpaintRequest({ steps: 4, guidanceScale: 1, scheduler: "euler", seed: 11, strength }));
      const ref = await diffusersInpaint(nets, { seed: 11, steps: 4, strength, image, mask, nineChannel: false });
      expectClose(out.latents, ref, { atol: 1e-4, rtol: 0, what: `inpaint latents, strength ${strength}` });
      const inverted = mask.map((v) => 1 - v);
      const wrongSide = await diffusersInpaint(nets, { seed: 11, steps: 4, strength, image, mask: inverted, nineChannel: false });
      assert.ok(maxAbsDiff(out.latents, wrongSide) > 0.05, "a blend that keeps the repainted side instead would match too");
    });
  }

  test("the kept region ends exactly at the init image's latents, the repainted one does not; with CFG and two images", async () => {
    const out = await pipe.run(inpaintRequest({ n: 2, steps: 3, guidanceScale: 7.5, scheduler: "euler_a", seed: 5 }));
    const imageLatents = await encodeSample(nets, image, new TorchGenerator(5));
    const repaintedDiff = assertKeptExactly(out.latents, imageLatents, 2);
    assert.ok(repaintedDiff > 0.05, `the masked region is repainted (max change ${repaintedDiff})`);
    assert.notDeepEqual(out.latents.subarray(0, C * PLANE), out.latents.subarray(C * PLANE), "two images, two noises");
  });

  test("a mask without an image, or of another size, is refused", async () => {
    const base = { prompt: PROMPT, n: 1, width: W, height: H, steps: 2, seed: 1 };
    await assert.rejects(pipe.run({ ...base, mask: { data: mask, width: W, height: H } }), (e: unknown) => e instanceof EaselError && e.param === "mask");
    await assert.rejects(
      pipe.run({ ...base, initImage: { data: image, width: W, height: H }, mask: { data: new Float32Array(32 * 32), width: 32, height: 32 } }),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "mask",
    );
  });
});

describe("inpainting UNet (in_channels 9, tiny sd15 inpainting checkpoint)", () => {
  let dir: string;
  let cacheDir: string;
  let pipe: LoadedPipeline;
  let nets: Nets;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "easel-inpaint9-"));
    cacheDir = join(dir, "cache");
    writeTinyCheckpoint(join(dir, "model"), { family: "sd15", seed: 9, inpainting: true });
    pipe = await loadSd15(loadCheckpoint(join(dir, "model")), { executionProvider: "cpu", intraOpThreads: 1, cacheDir });
    nets = await openNets(join(dir, "model"), cacheDir);
  });
  after(async () => {
    await pipe?.release();
    await Promise.all([nets?.unet.release(), nets?.vaeEncoder.release()]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const strength of [1, 0.75]) {
    test(`strength ${strength}: the UNet reads cat(latents, mask, masked-image latents); matches the formula`, async () => {
      const out = await pipe.run(inpaintRequest({ steps: 4, guidanceScale: 1, scheduler: "euler", seed: 3, strength }));
      const ref = await diffusersInpaint(nets, { seed: 3, steps: 4, strength, image, mask, nineChannel: true });
      expectClose(out.latents, ref, { atol: 1e-4, rtol: 0, what: `9-channel inpaint latents, strength ${strength}` });
      const inverted = await diffusersInpaint(nets, { seed: 3, steps: 4, strength, image, mask: mask.map((v) => 1 - v), nineChannel: true });
      assert.ok(maxAbsDiff(out.latents, inverted) > 1e-3, "the mask channel and the masked image are read");
    });
  }

  test("without a mask the whole image is repainted; without an image the model refuses", async () => {
    const base = { prompt: PROMPT, n: 1, width: W, height: H, steps: 3, guidanceScale: 1, scheduler: "euler", seed: 4 };
    const out = await pipe.run({ ...base, initImage: { data: image, width: W, height: H } });
    const ref = await diffusersInpaint(nets, { seed: 4, steps: 3, strength: 1, image, mask: new Float32Array(W * H).fill(1), nineChannel: true });
    expectClose(out.latents, ref, { atol: 1e-4, rtol: 0, what: "9-channel, whole image" });
    await assert.rejects(pipe.run(base), (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && /inpainting model/.test(e.message));
  });
});

describe("inpainting on the SDXL pipeline (tiny SDXL checkpoints, 4- and 9-channel UNets)", () => {
  let dir: string;
  const pipes: Record<string, LoadedPipeline> = {};
  let vaeEncoder: ModelSession;
  let scalingFactor = 0;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "easel-inpaint-xl-"));
    const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: join(dir, "cache") };
    for (const inpainting of [false, true]) {
      const model = join(dir, inpainting ? "xl-inpainting" : "xl");
      writeTinyCheckpoint(model, { family: "sdxl", seed: 21, inpainting });
      pipes[inpainting ? "nine" : "four"] = await loadSdxl(loadCheckpoint(model), rt);
    }
    const vae = prepareVaeEncoder(join(dir, "xl", "vae"), rt);
    const [vaePath, vaeTuning] = sessionArgs(vae);
    vaeEncoder = await createSession(vaePath, { executionProvider: "cpu", intraOpThreads: 1, ...vaeTuning });
    scalingFactor = vae.config.scalingFactor;
  });
  after(async () => {
    await Promise.all([...Object.values(pipes).map((p) => p.release()), vaeEncoder?.release()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const params = (m: Float32Array) => inpaintRequest({ steps: 3, guidanceScale: 5, scheduler: "euler", seed: 8, mask: m });

  test("4 channels: the kept region ends exactly at the init image's latents (the blend after the last step)", async () => {
    const out = await pipes.four.run(params(mask));
    const nets = { vaeEncoder, scalingFactor } as Nets;
    const imageLatents = await encodeSample(nets, image, new TorchGenerator(8));
    const repainted = assertKeptExactly(out.latents, imageLatents, 1);
    assert.ok(repainted > 0.05, `the masked region is repainted (max change ${repainted})`);
  });

  test("9 channels: the UNet reads the mask and the masked image; nothing is blended", async () => {
    const out = await pipes.nine.run(params(mask));
    assert.deepEqual(out.latentShape, [1, C, H / 8, W / 8]);
    assert.ok(out.latents.every(Number.isFinite));
    const inverted = await pipes.nine.run(params(mask.map((v) => 1 - v)));
    assert.ok(maxAbsDiff(out.latents, inverted.latents) > 1e-3, "the mask is read");
    await assert.rejects(pipes.nine.run({ prompt: PROMPT, n: 1, steps: 2, seed: 1 }), (e: unknown) => e instanceof EaselError && /inpainting model/.test(e.message));
  });
});

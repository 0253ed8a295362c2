/**
 * Every foreign scheduler name (Playground's 18, Monica's 10) through `resolveSchedulerName` and a real pipeline:
 * the micro sd15 checkpoint for the vp kind and a seeded tiny Playground v2.5 checkpoint for the edm kind. Also
 * each scheduler class a checkpoint may name in scheduler_config.json, and the short-schedule edge cases (1 and 2
 * steps, img2img strength 0.3): a finite result or a clear E_INPUT_INVALID, never NaN.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadCheckpoint } from "../../src/checkpoint/checkpoint.ts";
import { EaselError } from "../../src/core/errors.ts";
import { MONICA_SAMPLERS, PLAYGROUND_SAMPLERS, resolveSchedulerName } from "../../src/dialects/_shared/sampler-names.ts";
import { familyFor } from "../../src/models/index.ts";
import type { LoadedPipeline, PipelineOutput, PipelineParams, RuntimeOptions } from "../../src/models/pipeline/family.ts";
import { loadSd15 } from "../../src/models/sd15/pipeline.ts";
import { playgroundFamily } from "../../src/models/sdxl/index.ts";
import { writeTinyCheckpoint } from "../../src/models/testing/tiny-checkpoint.ts";
import { planSampling, SCHEDULER_IDS } from "../../src/samplers/index.ts";

const SD15 = resolve("test/fixtures/models/sd15");
const VOCABS = { playground: PLAYGROUND_SAMPLERS, monica: MONICA_SAMPLERS };
const SIZE = 64;

let tmp: string;
let rt: RuntimeOptions;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "easel-scheduler-names-"));
  rt = { executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") };
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function params(extra: Partial<PipelineParams> = {}): PipelineParams {
  return { prompt: "a lighthouse at dusk", negativePrompt: "blurry", n: 1, width: SIZE, height: SIZE, steps: 4, guidanceScale: 5, seed: 1234, ...extra };
}

function assertGood(out: PipelineOutput, what: string): void {
  assert.deepEqual(out.latentShape.slice(2), [SIZE / 8, SIZE / 8], `${what}: latent shape`);
  assert.ok(out.latents.length > 0 && out.latents.every(Number.isFinite), `${what}: non-finite latents`);
  assert.equal(out.images.length, 1, `${what}: images`);
  assert.equal(out.images[0].width, SIZE);
  assert.equal(out.images[0].height, SIZE);
  assert.equal(out.images[0].rgb.length, SIZE * SIZE * 3);
  // A decoded image of a random tiny VAE is never one flat colour; a flat one means NaN/Inf was clamped away.
  const rgb = out.images[0].rgb;
  assert.ok(rgb.some((v) => v !== rgb[0]), `${what}: flat image`);
}

/** Runs and checks, or accepts only a clear E_INPUT_INVALID; returns the number of denoiser calls or undefined. */
async function finiteOrInputInvalid(pipe: LoadedPipeline, p: PipelineParams, what: string): Promise<number | undefined> {
  let calls = 0;
  try {
    const out = await pipe.run(p, { onStep: (s) => (calls = s) });
    assertGood(out, what);
    assert.ok(calls >= 1, `${what}: no denoiser call`);
    return calls;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(e instanceof EaselError, `${what}: ${String(e)}`);
    assert.equal(e.code, "E_INPUT_INVALID", `${what}: ${e.code} ${e.message}`);
    assert.ok(e.param, `${what}: error names no field`);
    return undefined;
  }
}

const img2imgInit = (): NonNullable<PipelineParams["initImage"]> => ({
  data: new Float32Array(3 * SIZE * SIZE).map((_, i) => Math.sin(i / 37) * 0.8),
  width: SIZE,
  height: SIZE,
});

describe("vp names on the micro sd15 checkpoint", () => {
  let pipe: LoadedPipeline;
  before(async () => {
    pipe = await loadSd15(loadCheckpoint(SD15), rt);
  });
  after(() => pipe?.release());

  for (const [vocab, table] of Object.entries(VOCABS)) {
    test(`every ${vocab} name runs to finite latents and an image`, async () => {
      const names = Object.keys(table);
      assert.equal(names.length, vocab === "playground" ? 18 : 10);
      for (const name of names) {
        const id = resolveSchedulerName(name, "vp").id;
        assert.ok(SCHEDULER_IDS.includes(id), `${name} -> ${id}`);
        assert.doesNotMatch(id, /^(edm|flow)_/, `${name} -> ${id} on a vp model`);
        assert.equal(resolveSchedulerName(name.toLowerCase(), "vp").id, id, `${name} is case-insensitive`);
        assertGood(await pipe.run(params({ scheduler: id })), `${vocab} ${name} (${id})`);
      }
    });
  }

  test("the same seed reproduces a stochastic name, another seed does not", async () => {
    const id = resolveSchedulerName("K_EULER_ANCESTRAL", "vp").id;
    const a = await pipe.run(params({ scheduler: id }));
    const b = await pipe.run(params({ scheduler: id }));
    const c = await pipe.run(params({ scheduler: id, seed: 1235 }));
    assert.deepEqual(a.latents, b.latents);
    assert.notDeepEqual(a.latents, c.latents);
  });

  test("steps 1 and 2 and img2img strength 0.3: finite or E_INPUT_INVALID for every vp scheduler id", async () => {
    const ids = [undefined, ...SCHEDULER_IDS.filter((id) => !/^(edm|flow)_/.test(id))];
    let ran = 0;
    for (const id of ids) {
      for (const steps of [1, 2]) if ((await finiteOrInputInvalid(pipe, params({ scheduler: id, steps }), `${id} steps ${steps}`)) !== undefined) ran++;
      const i2i = params({ scheduler: id, steps: 10, strength: 0.3, initImage: img2imgInit() });
      if ((await finiteOrInputInvalid(pipe, i2i, `${id} img2img 0.3`)) !== undefined) ran++;
    }
    // Most schedules are defined at 1 and 2 steps; a blanket rejection would be a bug too.
    assert.ok(ran >= 2 * ids.length, `only ${ran} of ${3 * ids.length} edge runs produced images`);
  });

  test("PNDM (the checkpoint's own) with one step makes one denoiser call, as diffusers does", async () => {
    const calls = await finiteOrInputInvalid(pipe, params({ steps: 1 }), "pndm steps 1");
    assert.equal(calls, 1);
    const plms = await finiteOrInputInvalid(pipe, params({ scheduler: "plms", steps: 2 }), "plms steps 2");
    assert.equal(plms, 3); // diffusers' PLMS repeats the second-to-last timestep: [t1, t0, t0]
  });
});

describe("edm names on a tiny Playground v2.5 checkpoint", () => {
  let pipe: LoadedPipeline;
  before(async () => {
    const dir = join(tmp, "tiny-playground");
    writeTinyCheckpoint(dir, { family: "playground", seed: 7 });
    const ckpt = loadCheckpoint(dir);
    assert.equal(familyFor(ckpt), playgroundFamily);
    pipe = await playgroundFamily.load(ckpt, rt);
  });
  after(() => pipe?.release());

  for (const [vocab, table] of Object.entries(VOCABS)) {
    test(`every ${vocab} name runs to finite latents and an image`, async () => {
      for (const name of Object.keys(table)) {
        const id = resolveSchedulerName(name, "edm").id;
        assert.match(id, /^edm_/, `${name} -> ${id} on an EDM model`);
        assertGood(await pipe.run(params({ scheduler: id })), `${vocab} ${name} (${id})`);
      }
    });
  }

  test("steps 1 and 2 and img2img strength 0.3: finite or E_INPUT_INVALID for every edm scheduler id", async () => {
    const ids = [undefined, ...SCHEDULER_IDS.filter((id) => id.startsWith("edm_"))];
    for (const id of ids) {
      for (const steps of [1, 2]) await finiteOrInputInvalid(pipe, params({ scheduler: id, steps }), `${id} steps ${steps}`);
      await finiteOrInputInvalid(pipe, params({ scheduler: id, steps: 10, strength: 0.3, initImage: img2imgInit() }), `${id} img2img 0.3`);
    }
  });
});

/** Scheduler classes the engine accepts in scheduler_config.json, as the registry lists them in its error. */
function supportedClasses(): string[] {
  try {
    planSampling({ _class_name: "NoSuchScheduler" }, undefined, 4);
  } catch (e) {
    assert.ok(e instanceof EaselError && e.code === "E_NOT_SUPPORTED");
    const allowed = e.details?.allowed;
    assert.ok(Array.isArray(allowed) && allowed.length > 10, "the error lists the supported classes");
    return allowed as string[];
  }
  assert.fail("an unknown scheduler class was accepted");
}

/** A copy of the sd15 checkpoint (components linked) whose scheduler is `cls` with the original settings. */
function withScheduler(cls: string): string {
  const dir = join(tmp, `sd15-${cls}`);
  mkdirSync(join(dir, "scheduler"), { recursive: true });
  for (const c of ["text_encoder", "tokenizer", "unet", "vae"]) symlinkSync(join(SD15, c), join(dir, c));
  const index = JSON.parse(readFileSync(join(SD15, "model_index.json"), "utf8"));
  index.scheduler = ["diffusers", cls];
  writeFileSync(join(dir, "model_index.json"), JSON.stringify(index));
  const cfg = JSON.parse(readFileSync(join(SD15, "scheduler", "scheduler_config.json"), "utf8"));
  writeFileSync(join(dir, "scheduler", "scheduler_config.json"), JSON.stringify({ ...cfg, _class_name: cls }));
  return dir;
}

test("each supported scheduler class in scheduler_config.json plans and runs with no scheduler requested", async () => {
  // diffusers class names end in "Scheduler"; anything else in the list is an internal id no checkpoint can name.
  const classes = supportedClasses().filter((c) => c.endsWith("Scheduler"));
  for (const expected of ["PNDMScheduler", "EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "EDMEulerScheduler"]) {
    assert.ok(classes.includes(expected), `${expected} is supported`);
  }
  for (const cls of classes) {
    const ckpt = loadCheckpoint(withScheduler(cls));
    assert.equal(ckpt.schedulerClass, cls);
    const plan = planSampling(ckpt.schedulerConfig, undefined, 4);
    assert.equal(plan.className, cls);
    assert.ok(plan.modelCalls >= 1);
    const pipe = await loadSd15(ckpt, rt);
    try {
      let calls = 0;
      const out = await pipe.run(params({ scheduler: undefined }), { onStep: (s) => (calls = s) });
      assertGood(out, cls);
      assert.equal(calls, plan.modelCalls, `${cls}: denoiser calls`);
    } finally {
      await pipe.release();
    }
  }
});

/** Names, seeds, img2img and edge cases of the sampler entry points. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publishedSchedulerConfig as base } from "../../test/helpers/schedules.ts";
import { EaselError } from "../core/errors.ts";
import { type Img2ImgRule, img2imgStartStep } from "../core/limits.ts";
import { TorchGenerator } from "../tensor/rng.ts";
import { addNoise, planSampling, runSampling, SCHEDULER_IDS } from "./index.ts";

/** The img2img start-step rule of each family's pipeline (SD3 keeps steps·strength fractional). */
const RULE: Record<string, Img2ImgRule> = { sd15: "truncate", sdxl: "truncate", playground: "truncate", sd3: "fractional" };
const SHAPE = [1, 4, 8, 8];
const fake = async (xIn: Float32Array) => xIn.map((v) => 0.5 * v + 0.1);

async function run(family: string, id: string | undefined, steps: number, seed: number, strength?: number) {
  const plan = planSampling(base(family), id, steps, strength === undefined ? {} : { startStep: img2imgStartStep(RULE[family], steps, strength) });
  const gen = new TorchGenerator(seed);
  let x = gen.randn(SHAPE);
  if (strength !== undefined) x = addNoise(plan, x.map((v) => v * 0.3), gen.randn(SHAPE));
  let previews = 0;
  const out = await runSampling(plan, fake, x, {
    shape: SHAPE,
    noise: gen,
    onStep: (_i, _n, _x, d) => {
      if (d) previews++;
    },
  });
  assert.ok(out.every(Number.isFinite), `${id} on ${family}: non-finite output`);
  return { out, plan, previews };
}

test("unknown ids and bad inputs are E_INPUT_INVALID naming the field", () => {
  const check = (fn: () => unknown, param: string) =>
    assert.throws(fn, (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === param);
  check(() => planSampling(base("sdxl"), "nope", 10), "scheduler");
  check(() => planSampling(base("sdxl"), "euler", 0), "steps");
  check(() => planSampling(base("sdxl"), "euler", Number.NaN), "steps");
  // strength itself is checked by core/limits.ts; the plan refuses a start step that is not a step or leaves none.
  check(() => planSampling(base("sdxl"), "euler", 10, { startStep: -1 }), "strength");
  check(() => planSampling(base("sdxl"), "euler", 10, { startStep: 1.5 }), "strength");
  check(() => planSampling(base("sdxl"), "euler", 10, { startStep: 10 }), "strength");
  check(() => planSampling(base("sdxl"), "euler", 10, { startStep: img2imgStartStep("truncate", 10, Number.NaN) }), "strength");
  check(() => planSampling(base("sdxl"), "ddim", 1001), "steps");
  check(() => planSampling(base("sdxl"), "lcm", 51), "steps");
  check(() => planSampling(base("sdxl"), "euler", 10, { startStep: img2imgStartStep("truncate", 10, 0.05) }), "strength");
});

test("stochastic samplers: same seed same output, different seed different output", async () => {
  for (const [family, id] of [["sdxl", "euler_a"], ["sdxl", "dpmpp_2m_sde_karras"], ["sdxl", "dpm2_a"], ["sdxl", "ddpm"], ["sdxl", "lcm"], ["sdxl", "dpmpp_sde"], ["sdxl", "dpmpp_2s_a"], ["playground", "edm_dpmpp_2m_sde"]]) {
    const a = await run(family, id, 6, 42);
    const b = await run(family, id, 6, 42);
    const c = await run(family, id, 6, 43);
    assert.deepEqual(a.out, b.out, `${id}: same seed`);
    assert.notDeepEqual(a.out, c.out, `${id}: different seed`);
  }
});

test("steps 1, 2 and above the training timesteps: diffusers' result or a clear error, never NaN", async () => {
  for (const family of ["sd15", "sdxl", "playground", "sd3"]) {
    for (const id of SCHEDULER_IDS) {
      for (const steps of [1, 2, 1200]) {
        try {
          const { plan } = await run(family, id, steps, 1);
          assert.ok(plan.modelCalls >= 1);
        } catch (e) {
          assert.ok(e instanceof EaselError, `${family}/${id}/${steps}: ${String(e)}`);
        }
      }
    }
  }
});

test("img2img starts mid-schedule with diffusers' get_timesteps rule", async () => {
  const plan = planSampling(base("sdxl"), "euler", 10, { startStep: img2imgStartStep("truncate", 10, 0.75) });
  assert.equal(plan.startIndex, 3);
  assert.equal(plan.modelCalls, 7);
  assert.ok(plan.img2img);
  const heun = planSampling(base("sdxl"), "heun", 10, { startStep: img2imgStartStep("truncate", 10, 0.5) });
  assert.equal(heun.startIndex, 10); // t_start 5 × order 2
  const flow = planSampling(base("sd3"), undefined, 10, { startStep: img2imgStartStep("fractional", 10, 0.75) });
  assert.equal(flow.startIndex, 2); // SD3 keeps steps·strength fractional: int(10 - 7.5)
  // where truncating leaves no step (int(10·0.05) = 0), SD3's rule still runs one: int(10 - 0.5)
  assert.equal(planSampling(base("sd3"), undefined, 10, { startStep: img2imgStartStep("fractional", 10, 0.05) }).modelCalls, 1);
  for (const id of ["euler", "heun", "dpmpp_2m_karras", "unipc", "ddim", "plms", "dpm2_a", "lms"]) await run("sdxl", id, 10, 3, 0.6);
  await run("sd3", undefined, 10, 3, 0.6);
  await run("playground", undefined, 10, 3, 0.6);
});

test("onStep carries the denoised estimate; abort stops between steps", async () => {
  const { previews, plan } = await run("sdxl", "euler", 5, 1);
  assert.equal(previews, plan.modelCalls);
  const ac = new AbortController();
  const p = planSampling(base("sdxl"), "euler", 5);
  const gen = new TorchGenerator(1);
  await assert.rejects(
    runSampling(p, fake, gen.randn(SHAPE), { shape: SHAPE, noise: gen, signal: ac.signal, onStep: () => ac.abort() }),
    (e: Error) => e.name === "AbortError",
  );
});

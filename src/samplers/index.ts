/**
 * Sampler registry and the entry points the pipelines call: `planSampling` (diffusers' `from_config` +
 * `set_timesteps` + img2img `get_timesteps`), `runSampling` (the denoising loop) and `addNoise` (img2img).
 * Scheduler ids are the reference names; foreign vocabularies (Playground, Monica, ...) are a dialect concern
 * (src/dialects/_shared/sampler-names.ts).
 */
import { EaselError } from "../core/errors.ts";
import type { NoiseSource } from "../tensor/noise.ts";
import { resolveConfig, type SchedulerConfig } from "./_shared/config.ts";
import type { LoopContext, SamplerDef, Schedule } from "./_shared/types.ts";
import { ddim } from "./ddim.ts";
import { ddpm } from "./ddpm.ts";
import { deis } from "./deis.ts";
import { dpm2 } from "./dpm2.ts";
import { dpm2Ancestral } from "./dpm2-ancestral.ts";
import { dpmppMultistep } from "./dpmpp-2m.ts";
import { dpmpp2s } from "./dpmpp-2s.ts";
import { dpmpp2sAncestral } from "./dpmpp-2s-ancestral.ts";
import { dpmppSde } from "./dpmpp-sde.ts";
import { edmDpmpp, edmEuler } from "./edm.ts";
import { euler } from "./euler.ts";
import { eulerAncestral } from "./euler-ancestral.ts";
import { flowEuler, flowHeun } from "./flow.ts";
import { heun } from "./heun.ts";
import { lcm } from "./lcm.ts";
import { lms } from "./lms.ts";
import { pndm } from "./pndm.ts";
import { unipc } from "./unipc.ts";

export type { SchedulerConfig } from "./_shared/config.ts";

// biome-ignore lint/suspicious/noExplicitAny: the registry holds samplers with different schedule types.
type AnySampler = SamplerDef<any>;

const DPM = { algorithm_type: "dpmsolver++", solver_order: 2 };
const DPM_SDE = { algorithm_type: "sde-dpmsolver++", solver_order: 2 };
const KARRAS = { use_karras_sigmas: true };

/** id → (sampler, overrides on the checkpoint's config), as the reference names them. */
const REGISTRY: Record<string, { sampler: AnySampler; overrides: SchedulerConfig | ((base: SchedulerConfig) => SchedulerConfig) }> = {
  ddim: { sampler: ddim, overrides: {} },
  ddpm: { sampler: ddpm, overrides: {} },
  pndm: { sampler: pndm, overrides: {} },
  plms: { sampler: pndm, overrides: { skip_prk_steps: true } },
  lms: { sampler: lms, overrides: {} },
  lms_karras: { sampler: lms, overrides: KARRAS },
  euler: { sampler: euler, overrides: {} },
  euler_karras: { sampler: euler, overrides: KARRAS },
  euler_a: { sampler: eulerAncestral, overrides: {} },
  heun: { sampler: heun, overrides: {} },
  heun_karras: { sampler: heun, overrides: KARRAS },
  dpm2: { sampler: dpm2, overrides: {} },
  dpm2_karras: { sampler: dpm2, overrides: KARRAS },
  dpm2_a: { sampler: dpm2Ancestral, overrides: {} },
  dpm2_a_karras: { sampler: dpm2Ancestral, overrides: KARRAS },
  dpmpp_2m: { sampler: dpmppMultistep, overrides: DPM },
  dpmpp_2m_karras: { sampler: dpmppMultistep, overrides: { ...DPM, ...KARRAS } },
  dpmpp_2m_lu: { sampler: dpmppMultistep, overrides: { ...DPM, use_lu_lambdas: true } },
  dpmpp_2m_sde: { sampler: dpmppMultistep, overrides: DPM_SDE },
  dpmpp_2m_sde_karras: { sampler: dpmppMultistep, overrides: { ...DPM_SDE, ...KARRAS } },
  dpmpp_2m_sde_lu: { sampler: dpmppMultistep, overrides: { ...DPM_SDE, use_lu_lambdas: true } },
  dpmpp_sde: { sampler: dpmppSde, overrides: {} },
  dpmpp_sde_karras: { sampler: dpmppSde, overrides: KARRAS },
  dpmpp_2s: { sampler: dpmpp2s, overrides: DPM },
  dpmpp_2s_a: { sampler: dpmpp2sAncestral, overrides: {} },
  unipc: { sampler: unipc, overrides: {} },
  unipc_karras: { sampler: unipc, overrides: KARRAS },
  deis: { sampler: deis, overrides: {} },
  lcm: { sampler: lcm, overrides: {} },
  edm_dpmpp_2m: { sampler: edmDpmpp, overrides: {} },
  edm_dpmpp_2m_sde: { sampler: edmDpmpp, overrides: { algorithm_type: "sde-dpmsolver++" } },
  edm_dpmpp_2m_exp: { sampler: edmDpmpp, overrides: { sigma_schedule: "exponential" } },
  edm_dpmpp_2m_sde_exp: { sampler: edmDpmpp, overrides: { algorithm_type: "sde-dpmsolver++", sigma_schedule: "exponential" } },
  edm_euler: { sampler: edmEuler, overrides: {} },
  flow_euler: { sampler: flowEuler, overrides: {} },
  flow_heun: { sampler: flowHeun, overrides: {} },
  // DPM-Solver++(2M) on a flow model: diffusers' flow-sigma mode, shifted like the checkpoint's own schedule.
  flow_dpmpp_2m: {
    sampler: dpmppMultistep,
    overrides: (base) => ({ ...DPM, use_flow_sigmas: true, prediction_type: "flow_prediction", flow_shift: base.shift ?? 1.0 }),
  },
};

const BY_CLASS: Record<string, AnySampler> = Object.fromEntries(
  [ddim, ddpm, pndm, lms, euler, eulerAncestral, heun, dpm2, dpm2Ancestral, dpmppMultistep, dpmppSde, dpmpp2s, dpmpp2sAncestral, unipc, deis, lcm, edmDpmpp, edmEuler, flowEuler, flowHeun].map(
    (s) => [s.className, s],
  ),
);

export const SCHEDULER_IDS: readonly string[] = Object.freeze(Object.keys(REGISTRY));

export interface SamplingPlan {
  schedulerId: string;
  className: string;
  /** resolved, as diffusers' from_config would */
  config: Record<string, unknown>;
  /** set_timesteps' result, computed once per request and used by the loop and addNoise */
  schedule: Schedule;
  timesteps: number[];
  sigmas: number[];
  initNoiseSigma: number;
  order: number;
  /** calls to the model */
  modelCalls: number;
  startIndex: number;
  steps: number;
  /** true when planned for img2img (a start step given): x is then the noised latents from addNoise. */
  img2img: boolean;
  /** The latent grid the plan is for (schedules that shift with resolution need it). */
  latentSize?: { height: number; width: number };
}

export interface PlanOptions {
  /**
   * img2img: the pipeline's `t_start` (diffusers' get_timesteps), in steps. Each pipeline owns its rule for it
   * (core/limits.ts img2imgStartStep); the schedule starts at `startStep * order`.
   */
  startStep?: number;
  latentSize?: { height: number; width: number };
}

function lookup(baseConfig: Record<string, unknown>, schedulerId: string | undefined): { id: string; sampler: AnySampler; config: SchedulerConfig } {
  if (schedulerId === undefined) {
    const cls = baseConfig._class_name;
    const sampler = typeof cls === "string" ? BY_CLASS[cls] : undefined;
    if (!sampler)
      throw new EaselError("E_NOT_SUPPORTED", `Scheduler class ${JSON.stringify(cls)} in scheduler_config.json is not supported.`, {
        param: "_class_name",
        details: { allowed: Object.keys(BY_CLASS) },
      });
    return { id: String(cls), sampler, config: resolveConfig(sampler.className, baseConfig) };
  }
  const entry = REGISTRY[schedulerId];
  if (!entry)
    throw new EaselError("E_INPUT_INVALID", `Unknown scheduler "${schedulerId}".`, { param: "scheduler", details: { allowed: SCHEDULER_IDS } });
  const overrides = typeof entry.overrides === "function" ? entry.overrides(baseConfig) : entry.overrides;
  return { id: schedulerId, sampler: entry.sampler, config: resolveConfig(entry.sampler.className, baseConfig, overrides) };
}

/** Resolves the scheduler and runs its set_timesteps once; for img2img starts at the pipeline's start step. */
export function planSampling(baseConfig: Record<string, unknown>, schedulerId: string | undefined, steps: number, opts: PlanOptions = {}): SamplingPlan {
  if (!Number.isInteger(steps) || steps < 1)
    throw new EaselError("E_INPUT_INVALID", `steps must be an integer >= 1, got ${steps}.`, { param: "steps", details: { min: 1 } });
  const { startStep } = opts;
  if (startStep !== undefined && (!Number.isInteger(startStep) || startStep < 0))
    throw new EaselError("E_INPUT_INVALID", `the img2img start step must be an integer >= 0, got ${startStep}.`, { param: "strength" });
  const { id, sampler, config } = lookup(baseConfig, schedulerId);
  const s: Schedule = sampler.schedule(config, steps);
  for (const v of [...s.timesteps, ...s.sigmas, s.initNoiseSigma])
    if (Number.isNaN(v))
      throw new EaselError("E_INPUT_INVALID", `The ${id} schedule for ${steps} steps is not defined (NaN).`, { param: "steps" });
  if (s.timesteps.length === 0)
    throw new EaselError("E_INPUT_INVALID", `${id} has no timesteps for ${steps} steps.`, { param: "steps" });
  const startIndex = (startStep ?? 0) * s.order;
  if (startIndex >= s.timesteps.length)
    throw new EaselError("E_INPUT_INVALID", `this strength with ${steps} steps leaves no denoising step; raise steps or strength.`, {
      param: "strength",
    });
  return {
    schedulerId: id,
    className: sampler.className,
    config,
    schedule: s,
    timesteps: s.timesteps,
    sigmas: s.sigmas,
    initNoiseSigma: s.initNoiseSigma,
    order: s.order,
    modelCalls: s.timesteps.length - startIndex,
    startIndex,
    steps,
    img2img: startStep !== undefined,
    latentSize: opts.latentSize,
  };
}

function samplerOf(plan: SamplingPlan): AnySampler {
  const sampler = BY_CLASS[plan.className];
  if (!sampler) throw new EaselError("E_INPUT_INVALID", `Unknown scheduler class "${plan.className}".`, { param: "scheduler" });
  return sampler;
}

function abortError(): Error {
  const e = new Error("Sampling was aborted.");
  e.name = "AbortError";
  return e;
}

/** Runs the loop. x: unit-normal noise (scaled by initNoiseSigma here) or, for img2img, addNoise's output. */
export async function runSampling(
  plan: SamplingPlan,
  model: (xIn: Float32Array, t: number, i: number) => Promise<Float32Array>,
  x: Float32Array,
  opts: {
    shape: number[];
    noise: NoiseSource;
    sdeNoise?: NoiseSource;
    signal?: AbortSignal;
    /**
     * Called after each scheduler step at timestep index `i` with the latents the loop goes on from; it may change
     * them in place (inpainting blends the kept region back in, as diffusers' inpaint pipelines do after each step).
     */
    afterStep?: (i: number, x: Float32Array) => void;
    onStep?: (i: number, total: number, x: Float32Array, denoised?: Float32Array) => void;
  },
): Promise<Float32Array> {
  const size = opts.shape.reduce((a, b) => a * b, 1);
  if (x.length !== size)
    throw new EaselError("E_INPUT_INVALID", `latents have ${x.length} values, shape ${JSON.stringify(opts.shape)} needs ${size}.`, { param: "shape" });
  const sampler = samplerOf(plan);
  const schedule = plan.schedule;
  let calls = 0;
  const ctx: LoopContext = {
    start: plan.startIndex,
    beginIndexSet: plan.img2img,
    async call(xIn, i) {
      if (opts.signal?.aborted) throw abortError();
      const out = await model(xIn, schedule.timesteps[i], calls);
      if (out.length !== size)
        throw new EaselError("E_ENGINE_FAILED", `The denoiser returned ${out.length} values, expected ${size}.`);
      calls++;
      return out;
    },
    report(i, cur, denoised) {
      opts.afterStep?.(i, cur);
      // Some scheduler/config pairs diverge in diffusers too (VP KDPM2 classes on an EDM config): stop with a
      // clear error instead of handing NaN on to previews and the VAE.
      for (let j = 0; j < cur.length; j++)
        if (!Number.isFinite(cur[j]))
          throw new EaselError(
            "E_NOT_SUPPORTED",
            `Scheduler ${plan.schedulerId} (${plan.className}) produces non-finite latents at call ${calls} with this model's scheduler config; choose another scheduler.`,
            { param: "scheduler" },
          );
      opts.onStep?.(calls, plan.modelCalls, cur, denoised);
    },
    randn: () => opts.noise.randn(opts.shape),
    sdeRandn: () => (opts.sdeNoise ?? opts.noise).randn(opts.shape),
  };
  let start = x;
  if (!plan.img2img) {
    const c = Math.fround(schedule.initNoiseSigma);
    start = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) start[i] = x[i] * c;
  }
  const out = await sampler.sample(ctx, start, schedule, plan.config);
  if (opts.signal?.aborted) throw abortError();
  return out;
}

/**
 * img2img: diffusers' scheduler.add_noise at the plan's first timestep (scale_noise for flow); `index` another
 * timestep index (inpainting noises the kept region to the level of the step just taken).
 */
export function addNoise(plan: SamplingPlan, x0: Float32Array, noise: Float32Array, index = plan.startIndex): Float32Array {
  if (x0.length !== noise.length)
    throw new EaselError("E_INPUT_INVALID", "addNoise: latents and noise differ in size.", { param: "noise" });
  return samplerOf(plan).addNoise(plan.schedule, plan.config, x0, noise, index);
}

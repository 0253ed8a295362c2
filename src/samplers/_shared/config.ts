/**
 * Scheduler configs resolved the way diffusers' `Class.from_config(base, **overrides)` does: the class's
 * constructor defaults, then every key of the checkpoint's `scheduler_config.json` (unknown keys are kept,
 * and some classes read them, e.g. `sigma_min`/`sigma_max` for Karras bounds), then the overrides.
 * Defaults are those of diffusers 0.32.
 */
import { EaselError } from "../../core/errors.ts";

export type SchedulerConfig = Record<string, unknown>;

const VP = { num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear", trained_betas: null };
const VP_K = { ...VP, beta_start: 0.00085, beta_end: 0.012 };
const SOLVER = {
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  prediction_type: "epsilon",
};
const SIGMA_KINDS = { use_karras_sigmas: false, use_exponential_sigmas: false, use_beta_sigmas: false };

export const CLASS_DEFAULTS: Record<string, SchedulerConfig> = {
  DDIMScheduler: {
    ...VP,
    ...SOLVER,
    clip_sample: true,
    set_alpha_to_one: true,
    steps_offset: 0,
    clip_sample_range: 1.0,
    timestep_spacing: "leading",
    rescale_betas_zero_snr: false,
  },
  DDPMScheduler: {
    ...VP,
    ...SOLVER,
    variance_type: "fixed_small",
    clip_sample: true,
    clip_sample_range: 1.0,
    timestep_spacing: "leading",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  },
  PNDMScheduler: {
    ...VP,
    skip_prk_steps: false,
    set_alpha_to_one: false,
    prediction_type: "epsilon",
    timestep_spacing: "leading",
    steps_offset: 0,
  },
  LMSDiscreteScheduler: { ...VP, ...SIGMA_KINDS, prediction_type: "epsilon", timestep_spacing: "linspace", steps_offset: 0 },
  EulerDiscreteScheduler: {
    ...VP,
    prediction_type: "epsilon",
    interpolation_type: "linear",
    ...SIGMA_KINDS,
    sigma_min: null,
    sigma_max: null,
    timestep_spacing: "linspace",
    timestep_type: "discrete",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
    final_sigmas_type: "zero",
  },
  EulerAncestralDiscreteScheduler: {
    ...VP,
    prediction_type: "epsilon",
    timestep_spacing: "linspace",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  },
  HeunDiscreteScheduler: {
    ...VP_K,
    prediction_type: "epsilon",
    ...SIGMA_KINDS,
    clip_sample: false,
    clip_sample_range: 1.0,
    timestep_spacing: "linspace",
    steps_offset: 0,
  },
  KDPM2DiscreteScheduler: { ...VP_K, ...SIGMA_KINDS, prediction_type: "epsilon", timestep_spacing: "linspace", steps_offset: 0 },
  KDPM2AncestralDiscreteScheduler: {
    ...VP_K,
    ...SIGMA_KINDS,
    prediction_type: "epsilon",
    timestep_spacing: "linspace",
    steps_offset: 0,
  },
  DPMSolverMultistepScheduler: {
    ...VP,
    solver_order: 2,
    ...SOLVER,
    algorithm_type: "dpmsolver++",
    solver_type: "midpoint",
    lower_order_final: true,
    euler_at_final: false,
    ...SIGMA_KINDS,
    use_lu_lambdas: false,
    use_flow_sigmas: false,
    flow_shift: 1.0,
    final_sigmas_type: "zero",
    lambda_min_clipped: Number.NEGATIVE_INFINITY,
    variance_type: null,
    timestep_spacing: "linspace",
    steps_offset: 0,
    rescale_betas_zero_snr: false,
  },
  DPMSolverSDEScheduler: {
    ...VP_K,
    prediction_type: "epsilon",
    ...SIGMA_KINDS,
    noise_sampler_seed: null,
    timestep_spacing: "linspace",
    steps_offset: 0,
  },
  DPMSolverSinglestepScheduler: {
    ...VP,
    solver_order: 2,
    ...SOLVER,
    algorithm_type: "dpmsolver++",
    solver_type: "midpoint",
    lower_order_final: false,
    ...SIGMA_KINDS,
    use_flow_sigmas: false,
    flow_shift: 1.0,
    final_sigmas_type: "zero",
    lambda_min_clipped: Number.NEGATIVE_INFINITY,
    variance_type: null,
  },
  UniPCMultistepScheduler: {
    ...VP,
    solver_order: 2,
    ...SOLVER,
    predict_x0: true,
    solver_type: "bh2",
    lower_order_final: true,
    disable_corrector: [],
    solver_p: null,
    ...SIGMA_KINDS,
    use_flow_sigmas: false,
    flow_shift: 1.0,
    timestep_spacing: "linspace",
    steps_offset: 0,
    final_sigmas_type: "zero",
    rescale_betas_zero_snr: false,
  },
  DEISMultistepScheduler: {
    ...VP,
    solver_order: 2,
    ...SOLVER,
    algorithm_type: "deis",
    solver_type: "logrho",
    lower_order_final: true,
    ...SIGMA_KINDS,
    use_flow_sigmas: false,
    flow_shift: 1.0,
    timestep_spacing: "linspace",
    steps_offset: 0,
  },
  LCMScheduler: {
    ...VP_K,
    beta_schedule: "scaled_linear",
    original_inference_steps: 50,
    clip_sample: false,
    clip_sample_range: 1.0,
    set_alpha_to_one: true,
    steps_offset: 0,
    ...SOLVER,
    timestep_spacing: "leading",
    timestep_scaling: 10.0,
    rescale_betas_zero_snr: false,
  },
  EDMDPMSolverMultistepScheduler: {
    sigma_min: 0.002,
    sigma_max: 80.0,
    sigma_data: 0.5,
    sigma_schedule: "karras",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    rho: 7.0,
    solver_order: 2,
    thresholding: false,
    dynamic_thresholding_ratio: 0.995,
    sample_max_value: 1.0,
    algorithm_type: "dpmsolver++",
    solver_type: "midpoint",
    lower_order_final: true,
    euler_at_final: false,
    final_sigmas_type: "zero",
  },
  EDMEulerScheduler: {
    sigma_min: 0.002,
    sigma_max: 80.0,
    sigma_data: 0.5,
    sigma_schedule: "karras",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    rho: 7.0,
  },
  FlowMatchEulerDiscreteScheduler: {
    num_train_timesteps: 1000,
    shift: 1.0,
    use_dynamic_shifting: false,
    base_shift: 0.5,
    max_shift: 1.15,
    base_image_seq_len: 256,
    max_image_seq_len: 4096,
    invert_sigmas: false,
    shift_terminal: null,
    ...SIGMA_KINDS,
  },
  FlowMatchHeunDiscreteScheduler: { num_train_timesteps: 1000, shift: 1.0 },
};

// Not a diffusers class: the k-diffusion DPM++(2S) ancestral sampler takes the Euler config.
CLASS_DEFAULTS.DPMSolver2SAncestral = CLASS_DEFAULTS.EulerDiscreteScheduler;

/** `Class.from_config(base, **overrides)`: defaults < base config (minus `_` keys) < overrides. */
export function resolveConfig(className: string, base: SchedulerConfig, overrides: SchedulerConfig = {}): SchedulerConfig {
  const defaults = CLASS_DEFAULTS[className];
  if (!defaults) throw new EaselError("E_NOT_SUPPORTED", `Scheduler class "${className}" is not supported.`, { param: "_class_name" });
  const out: SchedulerConfig = { ...defaults };
  for (const [k, v] of Object.entries(base)) if (!k.startsWith("_")) out[k] = v;
  Object.assign(out, overrides);
  return out;
}

export function num(cfg: SchedulerConfig, key: string): number {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    if (v === Number.NEGATIVE_INFINITY || v === Number.POSITIVE_INFINITY) return v;
    throw new EaselError("E_CHECKPOINT_INVALID", `Scheduler config "${key}" must be a number, got ${JSON.stringify(v)}.`, { param: key });
  }
  return v;
}

export function optNum(cfg: SchedulerConfig, key: string): number | null {
  const v = cfg[key];
  return v == null ? null : num(cfg, key);
}

export function str(cfg: SchedulerConfig, key: string): string {
  const v = cfg[key];
  if (typeof v !== "string") throw new EaselError("E_CHECKPOINT_INVALID", `Scheduler config "${key}" must be a string.`, { param: key });
  return v;
}

export function bool(cfg: SchedulerConfig, key: string): boolean {
  return cfg[key] === true;
}

/** Rejects config options this implementation does not reproduce, instead of silently ignoring them. */
export function rejectUnsupported(cfg: SchedulerConfig, className: string, keys: Record<string, unknown>): void {
  for (const [k, allowed] of Object.entries(keys)) {
    const v = cfg[k];
    if (v === undefined || v === null) continue;
    const ok = Array.isArray(allowed) ? allowed.includes(v) : v === allowed;
    if (!ok)
      throw new EaselError("E_NOT_SUPPORTED", `${className} with ${k}=${JSON.stringify(v)} is not supported.`, {
        param: k,
        details: { allowed },
      });
  }
}

/**
 * The σ list shared by diffusers' σ-space VP schedulers (Euler, Euler ancestral, Heun, KDPM2, KDPM2 ancestral,
 * LMS, DPM-Solver SDE): spaced timesteps, σ interpolated linearly at them, optionally replaced by a Karras
 * or exponential ramp (then timesteps = sigma_to_t(σ)).
 */
import { EaselError } from "../../../core/errors.ts";
import { bool, num, optNum, type SchedulerConfig, str } from "../config.ts";
import { sigmaToT, type TrainSchedule, trainSchedule } from "./betas.ts";
import { interpIndex, roundHalfEven } from "./numeric.ts";
import { exponentialSigmas, karrasSigmas } from "./sigmas.ts";
import { checkSpacing, sigmaSpaceTimesteps } from "./spacing.ts";

export interface DiscreteSigmas {
  train: TrainSchedule;
  /** n timesteps (float). */
  timesteps: number[];
  /** n σ values in float64, before diffusers casts them to float32 (final σ not appended). */
  sigmas: number[];
}

export interface DiscreteOptions {
  /** Karras bounds come from config `sigma_min`/`sigma_max` when present (Euler, Heun, KDPM2*), else the list's ends. */
  karrasConfigBounds: boolean;
  /** Keep float64 timesteps (DPM-Solver SDE) instead of numpy float32. */
  f64Timesteps?: boolean;
  /** KDPM2*: Karras timesteps are rounded. */
  roundKarrasTimesteps?: boolean;
}

export function trainFromConfig(cfg: SchedulerConfig): TrainSchedule {
  if (bool(cfg, "rescale_betas_zero_snr"))
    throw new EaselError("E_NOT_SUPPORTED", "rescale_betas_zero_snr is not supported.", { param: "rescale_betas_zero_snr" });
  return trainSchedule({
    num_train_timesteps: num(cfg, "num_train_timesteps"),
    beta_start: num(cfg, "beta_start"),
    beta_end: num(cfg, "beta_end"),
    beta_schedule: str(cfg, "beta_schedule"),
    trained_betas: (cfg.trained_betas as number[] | null | undefined) ?? null,
  });
}

export function discreteSigmas(cfg: SchedulerConfig, steps: number, opts: DiscreteOptions): DiscreteSigmas {
  const T = num(cfg, "num_train_timesteps");
  const train = trainFromConfig(cfg);
  if (bool(cfg, "use_beta_sigmas"))
    throw new EaselError("E_NOT_SUPPORTED", "use_beta_sigmas is not supported.", { param: "use_beta_sigmas" });
  const spacing = checkSpacing(cfg.timestep_spacing);
  let timesteps = sigmaSpaceTimesteps(spacing, T, steps, num(cfg, "steps_offset"), opts.f64Timesteps);
  let sigmas = timesteps.map((t) => interpIndex(t, train.sigmas));
  const cfgMin = optNum(cfg, "sigma_min");
  const cfgMax = optNum(cfg, "sigma_max");
  if (bool(cfg, "use_karras_sigmas")) {
    const lo = opts.karrasConfigBounds && cfgMin !== null ? cfgMin : sigmas[sigmas.length - 1];
    const hi = opts.karrasConfigBounds && cfgMax !== null ? cfgMax : sigmas[0];
    sigmas = karrasSigmas(steps, lo, hi);
    timesteps = sigmas.map((s) => sigmaToT(s, train.logSigmas));
    if (opts.roundKarrasTimesteps) timesteps = timesteps.map(roundHalfEven);
  } else if (bool(cfg, "use_exponential_sigmas")) {
    const lo = cfgMin ?? sigmas[sigmas.length - 1];
    const hi = cfgMax ?? sigmas[0];
    sigmas = exponentialSigmas(steps, lo, hi);
    timesteps = sigmas.map((s) => sigmaToT(s, train.logSigmas));
  }
  return { train, timesteps, sigmas };
}

/** `init_noise_sigma` of the σ-space classes: max σ, or sqrt(max σ² + 1) for `leading` spacing. */
export function discreteInitNoiseSigma(cfg: SchedulerConfig, sigmas: number[]): number {
  const max = Math.max(...sigmas);
  return cfg.timestep_spacing === "linspace" || cfg.timestep_spacing === "trailing" ? max : Math.fround(Math.sqrt(max * max + 1));
}

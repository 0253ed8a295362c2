/**
 * σ-space helpers (x = x0 + σ·ε) shared by the Euler, Heun, LMS, KDPM2, DPM-SDE and DPM-Solver++(2S) ancestral
 * samplers: the Euler σ list and `add_noise`.
 */
import { EaselError } from "../../core/errors.ts";
import { type SchedulerConfig, str } from "./config.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./schedules/discrete.ts";
import { f32 } from "./schedules/numeric.ts";
import { combine, type Schedule } from "./types.ts";

/** diffusers `EulerDiscreteScheduler.set_timesteps`: the Euler σ list (also the grid of DPM-Solver++(2S) ancestral). */
export function eulerSchedule(cfg: SchedulerConfig, steps: number): Schedule {
  if (str(cfg, "interpolation_type") !== "linear")
    throw new EaselError("E_NOT_SUPPORTED", `interpolation_type "${String(cfg.interpolation_type)}" is not supported.`, {
      param: "interpolation_type",
    });
  const d = discreteSigmas(cfg, steps, { karrasConfigBounds: true });
  const finalType = str(cfg, "final_sigmas_type");
  if (finalType !== "zero" && finalType !== "sigma_min")
    throw new EaselError("E_NOT_SUPPORTED", `final_sigmas_type "${finalType}" is not supported.`, { param: "final_sigmas_type" });
  const last = finalType === "zero" ? 0 : d.train.sigmas[0];
  const sigmas = [...d.sigmas, last].map(f32);
  let timesteps = d.timesteps.map(f32);
  if (cfg.timestep_type === "continuous" && cfg.prediction_type === "v_prediction")
    timesteps = sigmas.slice(0, -1).map((s) => f32(0.25 * Math.log(s)));
  return { timesteps, sigmas, initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas), order: 1 };
}

/** add_noise of the σ-space schedulers: x0 + σ·noise at the start index. */
export function addSigmaNoise(s: Schedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
  return combine([1, x0], [s.sigmas[index], noise]);
}

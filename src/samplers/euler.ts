/** Euler's method in σ-space (Karras et al. 2022, Alg. 2 without churn): diffusers `EulerDiscreteScheduler`. */
import { EaselError } from "../core/errors.ts";
import { type SchedulerConfig, str } from "./config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./predict.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./schedules/discrete.ts";
import { f32 } from "./schedules/numeric.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./types.ts";

export const euler: SamplerDef = {
  className: "EulerDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
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
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    return sampleEuler(ctx, x, s, cfg);
  },
  addNoise: addSigmaNoise,
};

/** Euler loop over the σ list: d = (x - x0)/σ_i; x ← x + d·(σ_{i+1} - σ_i). */
export async function sampleEuler(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
  const p = prediction(cfg);
  let k = firstStepIndex(ctx, s.timesteps);
  for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
    checkIndex(k + 1, s.sigmas.length, "EulerDiscreteScheduler");
    const sigma = s.sigmas[k];
    const out = await ctx.call(scaleSigmaInput(x, sigma), i);
    const x0 = sigmaX0(p, out, x, sigma);
    const dt = f32(s.sigmas[k + 1] - sigma);
    x = combine([1 + dt / sigma, x], [-dt / sigma, x0]);
    ctx.report(i, x, x0);
  }
  return x;
}

/** add_noise of the σ-space schedulers: x0 + σ·noise at the start index. */
export function addSigmaNoise(s: Schedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
  return combine([1, x0], [s.sigmas[index], noise]);
}

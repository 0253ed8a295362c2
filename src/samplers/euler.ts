/** Euler's method in σ-space (Karras et al. 2022, Alg. 2 without churn): diffusers `EulerDiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise, eulerSchedule } from "./_shared/sigma-space.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export const euler: SamplerDef = {
  className: "EulerDiscreteScheduler",
  schedule: eulerSchedule,
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


/** Ancestral Euler (k-diffusion `sample_euler_ancestral`, η = 1): diffusers `EulerAncestralDiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export const eulerAncestral: SamplerDef = {
  className: "EulerAncestralDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    // This class has no Karras/exponential options: they are ignored by diffusers too.
    const d = discreteSigmas({ ...cfg, use_karras_sigmas: false, use_exponential_sigmas: false, use_beta_sigmas: false }, steps, {
      karrasConfigBounds: false,
    });
    const sigmas = [...d.sigmas, 0].map(f32);
    return { timesteps: d.timesteps.map(f32), sigmas, initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas), order: 1 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    let k = firstStepIndex(ctx, s.timesteps);
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const sigma = s.sigmas[k];
      const out = await ctx.call(scaleSigmaInput(x, sigma), i);
      const x0 = sigmaX0(p, out, x, sigma);
      const to = s.sigmas[k + 1];
      const up = f32(Math.sqrt((to * to * (sigma * sigma - to * to)) / (sigma * sigma)));
      const down = f32(Math.sqrt(to * to - up * up));
      const dt = f32(down - sigma);
      // diffusers draws the noise on every step, the last one included (σ_up = 0 there).
      const z = ctx.randn();
      const nx = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) nx[j] = x[j] + ((x[j] - x0[j]) / sigma) * dt + z[j] * up;
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

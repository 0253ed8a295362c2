/** Heun's 2nd-order method in σ-space (Karras et al. 2022, Alg. 1): diffusers `HeunDiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { interleave2 } from "./_shared/two-stage.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export const heun: SamplerDef = {
  className: "HeunDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const d = discreteSigmas(cfg, steps, { karrasConfigBounds: true });
    const sigmas = interleave2([...d.sigmas, 0].map(f32), true);
    const ts = d.timesteps.map((t) => (cfg.use_karras_sigmas || cfg.use_exponential_sigmas ? t : f32(t)));
    return { timesteps: interleave2(ts, false), sigmas, initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas), order: 2 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    const clip = cfg.clip_sample === true ? Number(cfg.clip_sample_range) : null;
    let k = firstStepIndex(ctx, s.timesteps);
    // Between the two stages: the derivative, step size and sample of stage 1.
    let prev: { d: Float32Array; dt: number; x: Float32Array } | null = null;
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + (prev ? 0 : 1), s.sigmas.length, this.className);
      const out = await ctx.call(scaleSigmaInput(x, s.sigmas[k]), i);
      if (!prev) {
        const sigma = s.sigmas[k];
        const x0 = clamp(sigmaX0(p, out, x, sigma), clip);
        const dt = f32(s.sigmas[k + 1] - sigma);
        const d = new Float32Array(x.length);
        const nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) {
          d[j] = (x[j] - x0[j]) / sigma;
          nx[j] = x[j] + d[j] * dt;
        }
        prev = { d, dt, x };
        x = nx;
        ctx.report(i, x, x0);
      } else {
        const sigmaNext = s.sigmas[k];
        const x0 = clamp(sigmaX0(p, out, x, sigmaNext), clip);
        const nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) {
          const d2 = (x[j] - x0[j]) / sigmaNext;
          nx[j] = prev.x[j] + ((prev.d[j] + d2) / 2) * prev.dt;
        }
        prev = null;
        x = nx;
        ctx.report(i, x, x0);
      }
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

function clamp(x: Float32Array, r: number | null): Float32Array {
  if (r === null) return x;
  for (let i = 0; i < x.length; i++) x[i] = Math.min(Math.max(x[i], -r), r);
  return x;
}

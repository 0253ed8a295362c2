/**
 * DPM-Solver++ SDE (Lu et al. 2022; k-diffusion `sample_dpmpp_sde`, r = ½, η = 1): diffusers `DPMSolverSDEScheduler`.
 * diffusers draws its noise from a torchsde Brownian tree seeded apart from the generator, so that noise cannot be
 * reproduced from a seed: the loop takes it from `ctx.sdeRandn()` (injected draws, or the seeded generator).
 */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { interleave2 } from "./_shared/two-stage.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export const dpmppSde: SamplerDef = {
  className: "DPMSolverSDEScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const d = discreteSigmas(cfg, steps, { karrasConfigBounds: false, f64Timesteps: true });
    // Stage-2 timesteps: σ at the midpoint in t = -ln σ of each interval (float64 σ list).
    const mids: number[] = [];
    for (let j = 0; j + 1 < d.sigmas.length; j++) {
      const t0 = -Math.log(d.sigmas[j]);
      const t1 = -Math.log(d.sigmas[j + 1]);
      mids.push(sigmaToT(Math.exp(-(t0 + (t1 - t0) * 0.5)), d.train.logSigmas));
    }
    const timesteps = [d.timesteps[0]];
    for (let j = 1; j < d.timesteps.length; j++) timesteps.push(mids[j - 1], d.timesteps[j]);
    const sigmas = interleave2([...d.sigmas, 0].map(f32), true);
    return { timesteps, sigmas, initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas), order: 2 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    let k = firstStepIndex(ctx, s.timesteps);
    let saved: Float32Array | null = null; // sample at the interval start while stage 2 is pending
    let midSigma = 0;
    const sigmaFn = (t: number) => f32(Math.exp(-t));
    const tFn = (sig: number) => f32(-f32(Math.log(sig)));
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const first: boolean = saved === null;
      const out = await ctx.call(scaleSigmaInput(x, first ? s.sigmas[k] : midSigma), i);
      const sigma = first ? s.sigmas[k] : s.sigmas[k - 1];
      const sigmaNext = first ? s.sigmas[k + 1] : s.sigmas[k];
      const t = tFn(sigma);
      let tNext = sigmaNext === 0 ? Number.POSITIVE_INFINITY : tFn(sigmaNext);
      const tProposed = f32(t + f32(f32(tNext - t) * 0.5));
      const x0 = sigmaX0(p, out, x, first ? sigma : sigmaFn(tProposed));
      const nx = new Float32Array(x.length);
      if (sigmaNext === 0) {
        const dt = sigmaNext - sigma;
        for (let j = 0; j < x.length; j++) nx[j] = x[j] + ((x[j] - x0[j]) / sigma) * dt;
      } else {
        if (first) tNext = tProposed;
        const base: Float32Array = first ? x : (saved as Float32Array);
        const from = sigmaFn(t);
        const to = sigmaFn(tNext);
        const up = Math.min(to, Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
        const down = Math.sqrt(to * to - up * up);
        const ancestralT = tFn(down);
        const c1 = sigmaFn(ancestralT) / sigmaFn(t);
        const c2 = -Math.expm1(t - ancestralT);
        const w = ctx.sdeRandn();
        for (let j = 0; j < x.length; j++) nx[j] = c1 * base[j] + c2 * x0[j] + w[j] * up;
        if (first) {
          saved = base;
          midSigma = to;
        } else {
          saved = null;
        }
      }
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

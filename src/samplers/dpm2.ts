/** DPM-Solver-2 in σ-space (k-diffusion `sample_dpm_2`, midpoint in log σ): diffusers `KDPM2DiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { interleaveAll, logMidpoint } from "./_shared/two-stage.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export interface Dpm2Schedule extends Schedule {
  sigmasInterpol: number[];
}

export const dpm2: SamplerDef<Dpm2Schedule> = {
  className: "KDPM2DiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Dpm2Schedule {
    const d = discreteSigmas(cfg, steps, { karrasConfigBounds: true, roundKarrasTimesteps: true });
    const base = [...d.sigmas, 0].map(f32);
    const n = base.length;
    // σ_interpol[j] = geometric mean of σ_j and σ_{j-1} (roll by one: σ_0 pairs with the final 0).
    const interp = base.map((s, j) => logMidpoint(s, base[(j - 1 + n) % n]));
    const karras = cfg.use_karras_sigmas === true || cfg.use_exponential_sigmas === true;
    const ts = d.timesteps.map((t) => (karras ? t : f32(t)));
    const tInterp = interp.map((s) => sigmaToT(s, d.train.logSigmas)).map((t) => (karras ? t : f32(t)));
    const timesteps = [ts[0]];
    for (let j = 1; j < ts.length; j++) timesteps.push(tInterp[j], ts[j]);
    const sigmas = interleaveAll(base);
    return { timesteps, sigmas, sigmasInterpol: interleaveAll(interp), initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas), order: 2 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Dpm2Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    let k = firstStepIndex(ctx, s.timesteps);
    let saved: Float32Array | null = null; // the sample at the start of the interval (stage 1 done)
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const first: boolean = saved === null;
      const out = await ctx.call(scaleSigmaInput(x, first ? s.sigmas[k] : s.sigmasInterpol[k]), i);
      const sigma = first ? s.sigmas[k] : s.sigmas[k - 1];
      const sigmaInterpol = first ? s.sigmasInterpol[k + 1] : s.sigmasInterpol[k];
      const sigmaNext = first ? s.sigmas[k + 1] : s.sigmas[k];
      const x0 = sigmaX0(p, out, x, first ? sigma : sigmaInterpol);
      const nx = new Float32Array(x.length);
      if (first) {
        const dt = f32(sigmaInterpol - sigma);
        for (let j = 0; j < x.length; j++) nx[j] = x[j] + ((x[j] - x0[j]) / sigma) * dt;
        saved = x;
      } else {
        const dt = f32(sigmaNext - sigma);
        const base: Float32Array = saved as Float32Array;
        for (let j = 0; j < x.length; j++) nx[j] = base[j] + ((x[j] - x0[j]) / sigmaInterpol) * dt;
        saved = null;
      }
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

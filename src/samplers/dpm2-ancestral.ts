/** Ancestral DPM-Solver-2 (k-diffusion `sample_dpm_2_ancestral`): diffusers `KDPM2AncestralDiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { interleaveAll, logMidpoint } from "./_shared/two-stage.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export interface Dpm2aSchedule extends Schedule {
  sigmasInterpol: number[];
  sigmasUp: number[];
  sigmasDown: number[];
}

export const dpm2Ancestral: SamplerDef<Dpm2aSchedule> = {
  className: "KDPM2AncestralDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Dpm2aSchedule {
    const d = discreteSigmas(cfg, steps, { karrasConfigBounds: true, roundKarrasTimesteps: true });
    const base = [...d.sigmas, 0].map(f32);
    const n = base.length;
    const next = base.map((_, j) => (j + 1 < n ? base[j + 1] : 0));
    const up = base.map((s, j) => f32(Math.sqrt(f32((f32(next[j] * next[j]) * f32(s * s - next[j] * next[j])) / f32(s * s)))));
    const down = base.map((_, j) => (j === n - 1 ? 0 : f32(Math.sqrt(f32(next[j] * next[j] - up[j] * up[j])))));
    const interp = base.map((s, j) => (j >= n - 2 ? 0 : logMidpoint(s, down[j])));
    const karras = cfg.use_karras_sigmas === true || cfg.use_exponential_sigmas === true;
    const ts = d.timesteps.map((t) => (karras ? t : f32(t)));
    const tInterp = interp.map((s) => sigmaToT(s, d.train.logSigmas)).map((t) => (karras ? t : f32(t)));
    const timesteps = [ts[0]];
    for (let j = 1; j < ts.length; j++) timesteps.push(tInterp[j - 1], ts[j]);
    const sigmas = interleaveAll(base);
    return {
      timesteps,
      sigmas,
      sigmasInterpol: interleaveAll(interp),
      sigmasUp: interleaveAll(up),
      sigmasDown: interleaveAll(down),
      initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas),
      order: 2,
    };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Dpm2aSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    let k = firstStepIndex(ctx, s.timesteps);
    let saved: Float32Array | null = null;
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k, s.sigmas.length, this.className);
      const first: boolean = saved === null;
      const out = await ctx.call(scaleSigmaInput(x, first ? s.sigmas[k] : s.sigmasInterpol[k - 1]), i);
      const sigma = first ? s.sigmas[k] : s.sigmas[k - 1];
      const sigmaInterpol = first ? s.sigmasInterpol[k] : s.sigmasInterpol[k - 1];
      const x0 = sigmaX0(p, out, x, first ? sigma : sigmaInterpol);
      const nx = new Float32Array(x.length);
      if (first) {
        const dt = f32(sigmaInterpol - sigma);
        for (let j = 0; j < x.length; j++) nx[j] = x[j] + ((x[j] - x0[j]) / sigma) * dt;
        saved = x;
      } else {
        const dt = f32(s.sigmasDown[k - 1] - sigma);
        const sigmaUp = s.sigmasUp[k - 1];
        const z = ctx.randn();
        const base: Float32Array = saved as Float32Array;
        for (let j = 0; j < x.length; j++) nx[j] = base[j] + ((x[j] - x0[j]) / sigmaInterpol) * dt + z[j] * sigmaUp;
        saved = null;
      }
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

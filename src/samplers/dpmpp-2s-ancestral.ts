/**
 * DPM-Solver++(2S) ancestral (Lu et al. 2022; k-diffusion `sample_dpmpp_2s_ancestral`, η = 1), the sampler
 * behind Stability's K_DPMPP_2S_ANCESTRAL. diffusers has no such class: it runs here over the Euler σ list of
 * the checkpoint's VP config, with the ε-model wrapped as D(x, σ) = x - σ·ε(x/sqrt(σ²+1), t(σ)) (fractional t).
 */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { eulerSchedule } from "./_shared/sigma-space.ts";
import { combine, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

interface TwoSSchedule extends Schedule {
  /** σ the model is evaluated at, per call */
  callSigmas: number[];
}

/** k-diffusion `get_ancestral_step` with η = 1. */
function ancestral(from: number, to: number): [number, number] {
  const up = Math.min(to, Math.sqrt((to * to * (from * from - to * to)) / (from * from)));
  return [Math.sqrt(to * to - up * up), up];
}

export const dpmpp2sAncestral: SamplerDef<TwoSSchedule> = {
  className: "DPMSolver2SAncestral",
  schedule(cfg: SchedulerConfig, steps: number): TwoSSchedule {
    const base = eulerSchedule(cfg, steps);
    const train = trainFromConfig(cfg);
    const callSigmas: number[] = [];
    for (let i = 0; i + 1 < base.sigmas.length; i++) {
      const s = base.sigmas[i];
      callSigmas.push(s);
      const [down] = ancestral(s, base.sigmas[i + 1]);
      if (down > 0) callSigmas.push(Math.exp(-(-Math.log(s) + (-Math.log(down) + Math.log(s)) / 2)));
    }
    return {
      timesteps: callSigmas.map((s) => sigmaToT(s, train.logSigmas)),
      sigmas: base.sigmas,
      initNoiseSigma: base.initNoiseSigma,
      order: 2,
      callSigmas,
    };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: TwoSSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    const denoise = async (v: Float32Array, sigma: number, i: number) => sigmaX0(p, await ctx.call(scaleSigmaInput(v, sigma), i), v, sigma);
    // Map the call index to the step: each step is 2 calls, or 1 when σ_down = 0.
    let call = 0;
    for (let k = 0; k + 1 < s.sigmas.length; k++) {
      const sigma = s.sigmas[k];
      const [down, up] = ancestral(sigma, s.sigmas[k + 1]);
      const stepCalls = down > 0 ? 2 : 1;
      if (call < ctx.start) {
        call += stepCalls;
        continue;
      }
      const x0 = await denoise(x, sigma, call++);
      if (down === 0) {
        x = combine([1 + (down - sigma) / sigma, x], [-(down - sigma) / sigma, x0]);
      } else {
        const t = -Math.log(sigma);
        const h = -Math.log(down) - t;
        const sMid = Math.exp(-(t + h / 2));
        const x2 = combine([sMid / sigma, x], [-Math.expm1(-h / 2), x0]);
        const x02 = await denoise(x2, sMid, call++);
        x = combine([down / sigma, x], [-Math.expm1(-h), x02]);
      }
      if (s.sigmas[k + 1] > 0) {
        const z = ctx.randn();
        const nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) nx[j] = x[j] + z[j] * up;
        x = nx;
      }
      ctx.report(call - 1, x, x0);
    }
    return x;
  },
  addNoise(s: TwoSSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
    return combine([1, x0], [s.callSigmas[index], noise]);
  },
};

/** Linear multistep (order 4) in σ-space (k-diffusion `sample_lms`): diffusers `LMSDiscreteScheduler`. */
import type { SchedulerConfig } from "./_shared/config.ts";
import { prediction, scaleSigmaInput, sigmaX0 } from "./_shared/predict.ts";
import { discreteInitNoiseSigma, discreteSigmas } from "./_shared/schedules/discrete.ts";
import { f32 } from "./_shared/schedules/numeric.ts";
import { addSigmaNoise } from "./_shared/sigma-space.ts";
import { checkIndex, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

const MAX_ORDER = 4;

/** ∫_{σ_k}^{σ_{k+1}} Π_{m≠j} (τ - σ_{k-m}) / (σ_{k-j} - σ_{k-m}) dτ, integrated exactly (diffusers uses scipy quad). */
export function lmsCoefficient(sigmas: number[], order: number, k: number, j: number): number {
  let poly = [1]; // coefficients, lowest degree first
  for (let m = 0; m < order; m++) {
    if (m === j) continue;
    const a = sigmas[k - m];
    const c = sigmas[k - j] - a;
    const next = new Array<number>(poly.length + 1).fill(0);
    for (let p = 0; p < poly.length; p++) {
      next[p + 1] += poly[p] / c;
      next[p] -= (poly[p] * a) / c;
    }
    poly = next;
  }
  const lo = sigmas[k];
  const hi = sigmas[k + 1];
  let sum = 0;
  for (let p = 0; p < poly.length; p++) sum += (poly[p] * (hi ** (p + 1) - lo ** (p + 1))) / (p + 1);
  return sum;
}

export const lms: SamplerDef = {
  className: "LMSDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const d = discreteSigmas(cfg, steps, { karrasConfigBounds: false });
    const sigmas = [...d.sigmas, 0].map(f32);
    const karras = cfg.use_karras_sigmas === true || cfg.use_exponential_sigmas === true;
    return {
      timesteps: d.timesteps.map((t) => (karras ? t : f32(t))),
      sigmas,
      initNoiseSigma: discreteInitNoiseSigma(cfg, sigmas),
      order: 1,
    };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    let k = firstStepIndex(ctx, s.timesteps);
    const derivatives: Float32Array[] = []; // newest last, at most 4
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const sigma = s.sigmas[k];
      const out = await ctx.call(scaleSigmaInput(x, sigma), i);
      const x0 = sigmaX0(p, out, x, sigma);
      const d = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) d[j] = (x[j] - x0[j]) / sigma;
      derivatives.push(d);
      if (derivatives.length > MAX_ORDER) derivatives.shift();
      const order = Math.min(k + 1, MAX_ORDER);
      // zip(coeffs, reversed(derivatives)): the newest derivative gets coefficient 0.
      const used = Math.min(order, derivatives.length);
      const coeffs = Array.from({ length: used }, (_, j) => lmsCoefficient(s.sigmas, order, k, j));
      const nx = new Float32Array(x.length);
      for (let e = 0; e < x.length; e++) {
        let acc = 0;
        for (let j = 0; j < used; j++) acc += coeffs[j] * derivatives[derivatives.length - 1 - j][e];
        nx[e] = x[e] + acc;
      }
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addSigmaNoise,
};

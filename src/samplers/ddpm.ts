/** DDPM ancestral sampling (Ho et al. 2020): diffusers `DDPMScheduler`. */
import { EaselError } from "../core/errors.ts";
import { type AlphaSchedule, addAlphaNoise, alphaAt, clampInPlace } from "./_shared/alpha-space.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig } from "./_shared/config.ts";
import { prediction } from "./_shared/predict.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { checkSpacing, integerTimesteps } from "./_shared/schedules/spacing.ts";
import type { LoopContext, SamplerDef } from "./_shared/types.ts";

export const ddpm: SamplerDef<AlphaSchedule> = {
  className: "DDPMScheduler",
  schedule(cfg: SchedulerConfig, steps: number): AlphaSchedule {
    rejectUnsupported(cfg, this.className, {
      thresholding: false,
      variance_type: ["fixed_small", "fixed_small_log", "fixed_large"],
    });
    const T = num(cfg, "num_train_timesteps");
    if (steps > T)
      throw new EaselError("E_INPUT_INVALID", `steps must be at most ${T} for DDPM.`, { param: "steps", details: { max: T } });
    const train = trainFromConfig(cfg);
    const timesteps = integerTimesteps(checkSpacing(cfg.timestep_spacing), T, steps, num(cfg, "steps_offset"));
    return { timesteps, sigmas: [], initNoiseSigma: 1, order: 1, train, finalAlphaCumprod: 1 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: AlphaSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    const clip = bool(cfg, "clip_sample") ? num(cfg, "clip_sample_range") : null;
    const variance = cfg.variance_type as string;
    for (let i = ctx.start; i < s.timesteps.length; i++) {
      const t = s.timesteps[i];
      const out = await ctx.call(x, i);
      const idx = s.timesteps.indexOf(t);
      const prevT = idx === s.timesteps.length - 1 ? -1 : s.timesteps[idx + 1];
      const a = alphaAt(s, t);
      const aPrev = alphaAt(s, prevT, 1);
      const b = 1 - a;
      const bPrev = 1 - aPrev;
      const curAlpha = a / aPrev;
      const curBeta = 1 - curAlpha;
      const x0 = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        if (p === "epsilon") x0[j] = (x[j] - Math.sqrt(b) * out[j]) / Math.sqrt(a);
        else if (p === "v_prediction") x0[j] = Math.sqrt(a) * x[j] - Math.sqrt(b) * out[j];
        else x0[j] = out[j];
      }
      if (clip !== null) clampInPlace(x0, clip);
      const c0 = (Math.sqrt(aPrev) * curBeta) / b;
      const cx = (Math.sqrt(curAlpha) * bPrev) / b;
      const nx = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) nx[j] = c0 * x0[j] + cx * x[j];
      if (t > 0) {
        const z = ctx.randn();
        const v = Math.max((bPrev / b) * curBeta, 1e-20);
        const std = variance === "fixed_large" ? Math.sqrt(curBeta) : variance === "fixed_small_log" ? Math.exp(0.5 * Math.log(v)) : Math.sqrt(v);
        for (let j = 0; j < x.length; j++) nx[j] += std * z[j];
      }
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addAlphaNoise,
};

/** DDIM (Song et al. 2020), η = 0: diffusers `DDIMScheduler`. */
import { EaselError } from "../core/errors.ts";
import { type AlphaSchedule, addAlphaNoise, alphaAt, clampInPlace } from "./_shared/alpha-space.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig } from "./_shared/config.ts";
import { prediction } from "./_shared/predict.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { checkSpacing, integerTimesteps } from "./_shared/schedules/spacing.ts";
import type { LoopContext, SamplerDef } from "./_shared/types.ts";

export const ddim: SamplerDef<AlphaSchedule> = {
  className: "DDIMScheduler",
  schedule(cfg: SchedulerConfig, steps: number): AlphaSchedule {
    rejectUnsupported(cfg, this.className, { thresholding: false });
    const T = num(cfg, "num_train_timesteps");
    if (steps > T)
      throw new EaselError("E_INPUT_INVALID", `steps must be at most ${T} for DDIM.`, { param: "steps", details: { max: T } });
    const train = trainFromConfig(cfg);
    const timesteps = integerTimesteps(checkSpacing(cfg.timestep_spacing), T, steps, num(cfg, "steps_offset"));
    const finalAlphaCumprod = bool(cfg, "set_alpha_to_one") ? 1 : train.alphasCumprod[0];
    return { timesteps, sigmas: [], initNoiseSigma: 1, order: 1, train, finalAlphaCumprod };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: AlphaSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    const ratio = Math.floor(num(cfg, "num_train_timesteps") / (s.timesteps.length));
    const clip = bool(cfg, "clip_sample") ? num(cfg, "clip_sample_range") : null;
    for (let i = ctx.start; i < s.timesteps.length; i++) {
      const t = s.timesteps[i];
      const out = await ctx.call(x, i);
      // The previous timestep is t - T//N for every spacing (diffusers' rule).
      const a = alphaAt(s, t);
      const aPrev = alphaAt(s, t - ratio);
      const b = 1 - a;
      const sa = Math.sqrt(a);
      const sb = Math.sqrt(b);
      const x0 = new Float32Array(x.length);
      const eps = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        if (p === "epsilon") {
          x0[j] = (x[j] - sb * out[j]) / sa;
          eps[j] = out[j];
        } else if (p === "v_prediction") {
          x0[j] = sa * x[j] - sb * out[j];
          eps[j] = sa * out[j] + sb * x[j];
        } else {
          x0[j] = out[j];
          eps[j] = (x[j] - sa * out[j]) / sb;
        }
      }
      if (clip !== null) clampInPlace(x0, clip);
      const cx = Math.sqrt(aPrev);
      const ce = Math.sqrt(1 - aPrev);
      const nx = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) nx[j] = cx * x0[j] + ce * eps[j];
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addAlphaNoise,
};

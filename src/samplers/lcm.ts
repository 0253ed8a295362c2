/** Latent consistency model multistep sampling (Luo et al. 2023): diffusers `LCMScheduler`. */
import { EaselError } from "../core/errors.ts";
import { type AlphaSchedule, addAlphaNoise, alphaAt, clampInPlace } from "./_shared/alpha-space.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig } from "./_shared/config.ts";
import { prediction } from "./_shared/predict.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { npLinspace } from "./_shared/schedules/numeric.ts";
import { firstStepIndex, type LoopContext, type SamplerDef } from "./_shared/types.ts";

export const lcm: SamplerDef<AlphaSchedule> = {
  className: "LCMScheduler",
  schedule(cfg: SchedulerConfig, steps: number): AlphaSchedule {
    rejectUnsupported(cfg, this.className, { thresholding: false });
    const T = num(cfg, "num_train_timesteps");
    const original = num(cfg, "original_inference_steps");
    if (original > T) throw new EaselError("E_CHECKPOINT_INVALID", "original_inference_steps exceeds num_train_timesteps.", { param: "original_inference_steps" });
    if (steps > original)
      throw new EaselError("E_INPUT_INVALID", `steps must be at most ${original} for LCM (original_inference_steps).`, {
        param: "steps",
        details: { max: original },
      });
    const k = Math.floor(T / original);
    const origin = Array.from({ length: original }, (_, i) => (i + 1) * k - 1).reverse();
    const idx = npLinspace(0, origin.length, steps + 1).slice(0, steps).map(Math.floor);
    const timesteps = idx.map((i) => origin[i]);
    const train = trainFromConfig(cfg);
    const finalAlphaCumprod = bool(cfg, "set_alpha_to_one") ? 1 : train.alphasCumprod[0];
    return { timesteps, sigmas: [], initNoiseSigma: 1, order: 1, train, finalAlphaCumprod };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: AlphaSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg);
    const clip = bool(cfg, "clip_sample") ? num(cfg, "clip_sample_range") : null;
    const scaling = num(cfg, "timestep_scaling");
    const n = s.timesteps.length;
    let k = firstStepIndex(ctx, s.timesteps);
    for (let i = ctx.start; i < n; i++, k++) {
      const t = s.timesteps[i];
      const out = await ctx.call(x, i);
      const prevT = k + 1 < n ? s.timesteps[k + 1] : t;
      const a = alphaAt(s, t);
      const aPrev = alphaAt(s, prevT);
      const b = 1 - a;
      const st = t * scaling;
      const cSkip = 0.25 / (st * st + 0.25);
      const cOut = st / Math.sqrt(st * st + 0.25);
      const x0 = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        if (p === "epsilon") x0[j] = (x[j] - Math.sqrt(b) * out[j]) / Math.sqrt(a);
        else if (p === "v_prediction") x0[j] = Math.sqrt(a) * x[j] - Math.sqrt(b) * out[j];
        else x0[j] = out[j];
      }
      if (clip !== null) clampInPlace(x0, clip);
      const denoised = combineDenoised(x0, x, cOut, cSkip);
      if (k !== n - 1) {
        const z = ctx.randn();
        const nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) nx[j] = Math.sqrt(aPrev) * denoised[j] + Math.sqrt(1 - aPrev) * z[j];
        x = nx;
      } else x = denoised;
      ctx.report(i, x, denoised);
    }
    return x;
  },
  addNoise: addAlphaNoise,
};

function combineDenoised(x0: Float32Array, x: Float32Array, cOut: number, cSkip: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) out[j] = cOut * x0[j] + cSkip * x[j];
  return out;
}

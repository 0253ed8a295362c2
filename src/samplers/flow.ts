/**
 * Rectified-flow samplers for SD3-style models (Esser et al. 2024): diffusers `FlowMatchEulerDiscreteScheduler`
 * (with `shift`, and its double shift of σ_min) and `FlowMatchHeunDiscreteScheduler`. The network predicts the
 * velocity v; the step is written in v as diffusers does (x0 = x - σ·v is reported for previews).
 */
import { EaselError } from "../core/errors.ts";
import { bool, num, optNum, type SchedulerConfig } from "./_shared/config.ts";
import { f32, npLinspace, torchLinspaceF32 } from "./_shared/schedules/numeric.ts";
import { exponentialSigmas, flowShift, karrasSigmas } from "./_shared/schedules/sigmas.ts";
import { interleave2 } from "./_shared/two-stage.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

/** σ_max, σ_min of the training grid after the constructor's shift (float32). */
function trainBounds(T: number, shift: number): [number, number] {
  const ts = torchLinspaceF32(1, T, T); // numpy float32 linspace of integers is exact
  const lo = f32(flowShift(f32(ts[0] / T), shift));
  const hi = f32(flowShift(f32(ts[T - 1] / T), shift));
  return [lo, hi];
}

function flowSigmas(cfg: SchedulerConfig, steps: number, allowOptions: boolean): number[] {
  const T = num(cfg, "num_train_timesteps");
  const shift = num(cfg, "shift");
  if (allowOptions) {
    for (const k of ["use_dynamic_shifting", "invert_sigmas", "use_beta_sigmas"])
      if (bool(cfg, k)) throw new EaselError("E_NOT_SUPPORTED", `${k} is not supported.`, { param: k });
    if (cfg.shift_terminal) throw new EaselError("E_NOT_SUPPORTED", "shift_terminal is not supported.", { param: "shift_terminal" });
  }
  const [sMin, sMax] = trainBounds(T, shift);
  // Quirk kept on purpose: σ_min was already shifted, and is shifted again here.
  let sigmas = npLinspace(sMax * T, sMin * T, steps).map((t) => flowShift(t / T, shift));
  if (allowOptions && bool(cfg, "use_karras_sigmas"))
    sigmas = karrasSigmas(steps, optNum(cfg, "sigma_min") ?? sigmas[sigmas.length - 1], optNum(cfg, "sigma_max") ?? sigmas[0]);
  else if (allowOptions && bool(cfg, "use_exponential_sigmas"))
    sigmas = exponentialSigmas(steps, optNum(cfg, "sigma_min") ?? sigmas[sigmas.length - 1], optNum(cfg, "sigma_max") ?? sigmas[0]);
  return sigmas.map(f32);
}

function addFlowNoise(s: Schedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
  const sigma = s.sigmas[index];
  return combine([sigma, noise], [1 - sigma, x0]);
}

export const flowEuler: SamplerDef = {
  className: "FlowMatchEulerDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const sigmas = flowSigmas(cfg, steps, true);
    const T = num(cfg, "num_train_timesteps");
    return { timesteps: sigmas.map((s) => f32(s * T)), sigmas: [...sigmas, 0], initNoiseSigma: 1, order: 1 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule): Promise<Float32Array> {
    let k = firstStepIndex(ctx, s.timesteps);
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const v = await ctx.call(x, i);
      const sigma = s.sigmas[k];
      const dt = f32(s.sigmas[k + 1] - sigma);
      const x0 = combine([1, x], [-sigma, v]);
      x = combine([1, x], [dt, v]);
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addFlowNoise,
};

export const flowHeun: SamplerDef = {
  className: "FlowMatchHeunDiscreteScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const sigmas = flowSigmas(cfg, steps, false);
    const T = num(cfg, "num_train_timesteps");
    const ts = sigmas.map((s) => f32(s * T));
    return { timesteps: interleave2(ts, false), sigmas: interleave2([...sigmas, 0], true), initNoiseSigma: 1, order: 2 };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule): Promise<Float32Array> {
    let k = firstStepIndex(ctx, s.timesteps);
    let prev: { d: Float32Array; dt: number; x: Float32Array } | null = null;
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + (prev ? 0 : 1), s.sigmas.length, this.className);
      const v = await ctx.call(x, i);
      if (!prev) {
        const sigma = s.sigmas[k];
        const dt = f32(s.sigmas[k + 1] - sigma);
        const x0 = combine([1, x], [-sigma, v]);
        // derivative = (x - (x - σv))/σ, evaluated as diffusers does (not simplified to v).
        const d = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) d[j] = (x[j] - x0[j]) / sigma;
        prev = { d, dt, x };
        x = combine([1, x], [dt, d]);
        ctx.report(i, x, x0);
      } else {
        const sigmaNext = s.sigmas[k];
        const x0 = combine([1, x], [-sigmaNext, v]);
        const nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) nx[j] = prev.x[j] + 0.5 * (prev.d[j] + (x[j] - x0[j]) / sigmaNext) * prev.dt;
        prev = null;
        x = nx;
        ctx.report(i, x, x0);
      }
    }
    return x;
  },
  addNoise: addFlowNoise,
};

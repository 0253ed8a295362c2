/**
 * EDM samplers (Karras et al. 2022) for EDM-trained models such as Playground v2.5: diffusers
 * `EDMDPMSolverMultistepScheduler` (DPM-Solver++ 2M / 2M SDE with α = 1) and `EDMEulerScheduler`.
 */
import { EaselError } from "../core/errors.ts";
import { edmAlphaSigma } from "./_shared/alpha-sigma.ts";
import { num, type SchedulerConfig, str } from "./_shared/config.ts";
import { sampleDpmppMultistep } from "./_shared/dpmpp-multistep.ts";
import { edmX0, prediction } from "./_shared/predict.ts";
import { f32, npLinspace } from "./_shared/schedules/numeric.ts";
import { edmExponentialSigmasF32, edmKarrasSigmasF32 } from "./_shared/schedules/sigmas.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

/** σ list of the EDM schedulers; `f64Ramp`: EDMEuler's ramp is numpy float64 (then float32). */
function edmSigmas(cfg: SchedulerConfig, steps: number, f64Ramp: boolean): number[] {
  const lo = num(cfg, "sigma_min");
  const hi = num(cfg, "sigma_max");
  const rho = num(cfg, "rho");
  const kind = str(cfg, "sigma_schedule");
  if (kind === "karras") {
    if (!f64Ramp) return edmKarrasSigmasF32(steps, lo, hi, rho);
    const minInv = lo ** (1 / rho);
    const maxInv = hi ** (1 / rho);
    return npLinspace(0, 1, steps).map((r) => f32((maxInv + r * (minInv - maxInv)) ** rho));
  }
  if (kind === "exponential") return edmExponentialSigmasF32(steps, lo, hi);
  throw new EaselError("E_NOT_SUPPORTED", `sigma_schedule "${kind}" is not supported.`, { param: "sigma_schedule" });
}

function edmSchedule(cfg: SchedulerConfig, steps: number, f64Ramp: boolean, finalSigma: number): Schedule {
  const sigmas = edmSigmas(cfg, steps, f64Ramp);
  const timesteps = sigmas.map((s) => f32(0.25 * f32(Math.log(s))));
  const hi = num(cfg, "sigma_max");
  return { timesteps, sigmas: [...sigmas, f32(finalSigma)], initNoiseSigma: Math.sqrt(hi * hi + 1), order: 1 };
}

/** x · 1/sqrt(σ² + σ_data²): EDM's c_in. */
function edmScale(x: Float32Array, sigma: number, sigmaData: number): Float32Array {
  return combine([1 / Math.sqrt(sigma * sigma + sigmaData * sigmaData), x]);
}

function addEdmNoise(s: Schedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
  return combine([1, x0], [s.sigmas[index], noise]);
}

export const edmDpmpp: SamplerDef = {
  className: "EDMDPMSolverMultistepScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    const finalType = str(cfg, "final_sigmas_type");
    if (finalType !== "zero" && finalType !== "sigma_min")
      throw new EaselError("E_NOT_SUPPORTED", `final_sigmas_type "${finalType}" is not supported.`, { param: "final_sigmas_type" });
    return edmSchedule(cfg, steps, false, finalType === "zero" ? 0 : num(cfg, "sigma_min"));
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    const sd = num(cfg, "sigma_data");
    // diffusers' constructor maps DEIS / UniPC names onto DPM-Solver++ midpoint.
    const c = { ...cfg };
    if (c.algorithm_type === "deis") c.algorithm_type = "dpmsolver++";
    if (c.solver_type === "logrho" || c.solver_type === "bh1" || c.solver_type === "bh2") c.solver_type = "midpoint";
    return sampleDpmppMultistep(ctx, x, s, c, {
      className: this.className,
      alphaSigma: edmAlphaSigma,
      scaleInput: (v, k) => edmScale(v, s.sigmas[k], sd),
      toX0: (out, v, k) => edmX0(p, out, v, s.sigmas[k], sd),
    });
  },
  addNoise: addEdmNoise,
};

export const edmEuler: SamplerDef = {
  className: "EDMEulerScheduler",
  schedule(cfg: SchedulerConfig, steps: number): Schedule {
    return edmSchedule(cfg, steps, true, 0);
  },
  async sample(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    const sd = num(cfg, "sigma_data");
    let k = firstStepIndex(ctx, s.timesteps);
    for (let i = ctx.start; i < s.timesteps.length; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const sigma = s.sigmas[k];
      const out = await ctx.call(edmScale(x, sigma, sd), i);
      const x0 = edmX0(p, out, x, sigma, sd);
      const dt = f32(s.sigmas[k + 1] - sigma);
      x = combine([1 + dt / sigma, x], [-dt / sigma, x0]);
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise: addEdmNoise,
};

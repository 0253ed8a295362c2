/**
 * DPM-Solver++(2M) and its SDE variant (Lu et al. 2022), diffusers `DPMSolverMultistepScheduler`
 * (dpmsolver++ / sde-dpmsolver++, midpoint or heun, karras / exponential / lu lambdas / flow sigmas, final σ).
 * The update is written in diffusers' (α_t, σ_t) form (_shared/dpmpp-multistep.ts): for exactness the same loop
 * serves EDM (α = 1) too.
 */
import { EaselError } from "../core/errors.ts";
import { flowAlphaSigma, vpAlphaSigma } from "./_shared/alpha-sigma.ts";
import { bool, num, optNum, type SchedulerConfig, str } from "./_shared/config.ts";
import { sampleDpmppMultistep } from "./_shared/dpmpp-multistep.ts";
import { alphaX0, prediction } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { f32, interpIndex, npLinspace, roundHalfEven } from "./_shared/schedules/numeric.ts";
import { exponentialSigmas, flowShift, karrasSigmas, luLambdas } from "./_shared/schedules/sigmas.ts";
import { checkSpacing, multistepTimesteps } from "./_shared/schedules/spacing.ts";
import { combine, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

export interface DpmSchedule extends Schedule {
  flow: boolean;
}

export const dpmppMultistep: SamplerDef<DpmSchedule> = {
  className: "DPMSolverMultistepScheduler",
  schedule(cfg: SchedulerConfig, steps: number): DpmSchedule {
    const T = num(cfg, "num_train_timesteps");
    const train = trainFromConfig(cfg);
    if (bool(cfg, "use_beta_sigmas")) throw new EaselError("E_NOT_SUPPORTED", "use_beta_sigmas is not supported.", { param: "use_beta_sigmas" });
    const lmc = optNum(cfg, "lambda_min_clipped") ?? Number.NEGATIVE_INFINITY;
    // lambda_t ascending in reverse: count how many of the flipped λ are below the clip.
    let clipped = 0;
    for (let t = T - 1; t >= 0; t--) {
      const a = train.alphasCumprod[t];
      const l = f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
      if (l < lmc) clipped++;
      else break;
    }
    let timesteps = multistepTimesteps(checkSpacing(cfg.timestep_spacing), T - clipped, T, steps, num(cfg, "steps_offset"));
    let sigmas: number[];
    const trainAsc = train.sigmas;
    const cfgMin = optNum(cfg, "sigma_min");
    const cfgMax = optNum(cfg, "sigma_max");
    const flow = bool(cfg, "use_flow_sigmas");
    if (bool(cfg, "use_karras_sigmas")) {
      sigmas = karrasSigmas(steps, cfgMin ?? trainAsc[0], cfgMax ?? trainAsc[T - 1]);
      timesteps = sigmas.map((x) => roundHalfEven(sigmaToT(x, train.logSigmas)));
    } else if (bool(cfg, "use_lu_lambdas")) {
      sigmas = luLambdas(steps, train.logSigmas[0], train.logSigmas[T - 1]).map(Math.exp);
      timesteps = sigmas.map((x) => roundHalfEven(sigmaToT(x, train.logSigmas)));
    } else if (bool(cfg, "use_exponential_sigmas")) {
      sigmas = exponentialSigmas(steps, cfgMin ?? trainAsc[0], cfgMax ?? trainAsc[T - 1]);
      timesteps = sigmas.map((x) => Math.trunc(sigmaToT(x, train.logSigmas)));
    } else if (flow) {
      const shift = num(cfg, "flow_shift");
      sigmas = npLinspace(1, 1 / T, steps + 1)
        .map((a) => flowShift(1 - a, shift))
        .reverse()
        .slice(0, -1);
      timesteps = sigmas.map((x) => Math.trunc(x * T));
    } else {
      sigmas = timesteps.map((t) => interpIndex(t, trainAsc));
    }
    const finalType = str(cfg, "final_sigmas_type");
    if (finalType !== "zero" && finalType !== "sigma_min")
      throw new EaselError("E_NOT_SUPPORTED", `final_sigmas_type "${finalType}" is not supported.`, { param: "final_sigmas_type" });
    const last = finalType === "zero" ? 0 : trainAsc[0];
    return { timesteps, sigmas: [...sigmas, last].map(f32), initNoiseSigma: 1, order: 1, flow };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: DpmSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction", "sample", "flow_prediction"]);
    if (cfg.variance_type === "learned" || cfg.variance_type === "learned_range")
      throw new EaselError("E_NOT_SUPPORTED", "learned variance outputs are not supported.", { param: "variance_type" });
    const alphaSigma = s.flow ? flowAlphaSigma : vpAlphaSigma;
    return sampleDpmppMultistep(ctx, x, s, cfg, {
      className: this.className,
      alphaSigma,
      scaleInput: (v) => v,
      toX0: (out, v, k) => {
        const [a, st] = alphaSigma(s.sigmas[k]);
        return alphaX0(p, out, v, a, st, s.sigmas[k]);
      },
    });
  },
  addNoise(s: DpmSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
    const [a, st] = (s.flow ? flowAlphaSigma : vpAlphaSigma)(s.sigmas[index]);
    return combine([a, x0], [st, noise]);
  },
};

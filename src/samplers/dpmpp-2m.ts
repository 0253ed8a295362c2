/**
 * DPM-Solver++(2M) and its SDE variant (Lu et al. 2022), diffusers `DPMSolverMultistepScheduler`
 * (dpmsolver++ / sde-dpmsolver++, midpoint or heun, karras / exponential / lu lambdas / flow sigmas, final σ).
 * The update is written in diffusers' (α_t, σ_t) form: for exactness the same loop serves EDM (α = 1) too.
 */
import { EaselError } from "../core/errors.ts";
import { bool, num, optNum, rejectUnsupported, type SchedulerConfig, str } from "./config.ts";
import { alphaX0, prediction } from "./predict.ts";
import { sigmaToT } from "./schedules/betas.ts";
import { trainFromConfig } from "./schedules/discrete.ts";
import { f32, interpIndex, roundHalfEven } from "./schedules/numeric.ts";
import { exponentialSigmas, flowShift, karrasSigmas, luLambdas } from "./schedules/sigmas.ts";
import { checkSpacing, multistepTimesteps } from "./schedules/spacing.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./types.ts";
import { npLinspace } from "./schedules/numeric.ts";

/** diffusers' `_sigma_to_alpha_sigma_t` (VP: α = 1/sqrt(σ²+1); flow: α = 1 - σ; EDM: α = 1). */
export type AlphaSigma = (sigma: number) => [number, number];
export const vpAlphaSigma: AlphaSigma = (s) => {
  const a = 1 / Math.sqrt(s * s + 1);
  return [a, s * a];
};
export const flowAlphaSigma: AlphaSigma = (s) => [1 - s, s];
export const edmAlphaSigma: AlphaSigma = (s) => [1, s];

export interface MultistepOptions {
  className: string;
  alphaSigma: AlphaSigma;
  /** network input for step index k */
  scaleInput: (x: Float32Array, k: number) => Float32Array;
  /** denoised estimate from the raw output at step index k */
  toX0: (out: Float32Array, x: Float32Array, k: number) => Float32Array;
}

/** The shared DPM-Solver++ multistep loop (orders 1 and 2). */
export async function sampleDpmppMultistep(ctx: LoopContext, x: Float32Array, s: Schedule, cfg: SchedulerConfig, o: MultistepOptions): Promise<Float32Array> {
  rejectUnsupported(cfg, o.className, {
    algorithm_type: ["dpmsolver++", "sde-dpmsolver++"],
    solver_type: ["midpoint", "heun"],
    thresholding: false,
  });
  const order = num(cfg, "solver_order");
  if (order < 1 || order > 2)
    throw new EaselError("E_NOT_SUPPORTED", `${o.className} with solver_order ${order} is not supported (1 or 2).`, { param: "solver_order" });
  const sde = cfg.algorithm_type === "sde-dpmsolver++";
  const heun = cfg.solver_type === "heun";
  const n = s.timesteps.length;
  const lambda = (sig: number) => {
    const [a, st] = o.alphaSigma(sig);
    return Math.log(a) - Math.log(st);
  };
  let k = firstStepIndex(ctx, s.timesteps, n - 1);
  let prevX0: Float32Array | null = null;
  let lowerOrderNums = 0;
  for (let i = ctx.start; i < n; i++, k++) {
    checkIndex(k + 1, s.sigmas.length, o.className);
    const out = await ctx.call(o.scaleInput(x, k), i);
    const lowerOrderFinal =
      k === n - 1 && (bool(cfg, "euler_at_final") || (bool(cfg, "lower_order_final") && n < 15) || cfg.final_sigmas_type === "zero");
    const x0 = o.toX0(out, x, k);
    const noise = sde ? ctx.randn() : null;
    const [aT, sT] = o.alphaSigma(s.sigmas[k + 1]);
    const [, sS0] = o.alphaSigma(s.sigmas[k]);
    const h = lambda(s.sigmas[k + 1]) - lambda(s.sigmas[k]);
    const useFirst = order === 1 || lowerOrderNums < 1 || lowerOrderFinal || prevX0 === null;
    let nx: Float32Array;
    if (useFirst) {
      if (!sde) nx = combine([sT / sS0, x], [-aT * Math.expm1(-h), x0]);
      else nx = combine([(sT / sS0) * Math.exp(-h), x], [aT * -Math.expm1(-2 * h), x0], [sT * Math.sqrt(-Math.expm1(-2 * h)), noise as Float32Array]);
    } else {
      checkIndex(k - 1, s.sigmas.length, o.className);
      const h0 = lambda(s.sigmas[k]) - lambda(s.sigmas[k - 1]);
      const r0 = h0 / h;
      // D1 = (x0 - x0_prev) / r0
      const m1 = prevX0 as Float32Array;
      let c1: number;
      if (!sde) c1 = heun ? aT * (Math.expm1(-h) / h + 1) : -0.5 * aT * Math.expm1(-h);
      else c1 = heun ? aT * (-Math.expm1(-2 * h) / (-2 * h) + 1) : 0.5 * aT * -Math.expm1(-2 * h);
      const cx = sde ? (sT / sS0) * Math.exp(-h) : sT / sS0;
      const c0 = sde ? aT * -Math.expm1(-2 * h) : -aT * Math.expm1(-h);
      const cn = sde ? sT * Math.sqrt(-Math.expm1(-2 * h)) : 0;
      nx = new Float32Array(x.length);
      for (let j = 0; j < x.length; j++) {
        const d1 = (x0[j] - m1[j]) / r0;
        nx[j] = cx * x[j] + c0 * x0[j] + c1 * d1 + (noise ? cn * noise[j] : 0);
      }
    }
    prevX0 = x0;
    if (lowerOrderNums < order) lowerOrderNums++;
    x = nx;
    ctx.report(i, x, x0);
  }
  return x;
}

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

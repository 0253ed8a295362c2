/** DPM-Solver++ singlestep (Lu et al. 2022), orders 1-2: diffusers `DPMSolverSinglestepScheduler`. */
import { EaselError } from "../core/errors.ts";
import { flowAlphaSigma, vpAlphaSigma } from "./_shared/alpha-sigma.ts";
import { bool, num, optNum, rejectUnsupported, type SchedulerConfig, str } from "./_shared/config.ts";
import { alphaX0, prediction } from "./_shared/predict.ts";
import { sigmaToT } from "./_shared/schedules/betas.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { f32, interpIndex, npLinspace, roundHalfEven } from "./_shared/schedules/numeric.ts";
import { exponentialSigmas, flowShift, karrasSigmas } from "./_shared/schedules/sigmas.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

interface SinglestepSchedule extends Schedule {
  orders: number[];
  flow: boolean;
}

/** diffusers' `get_order_list` (orders 1-2). */
function orderList(steps: number, order: number, lowerOrderFinal: boolean, finalZero: boolean): number[] {
  let orders: number[];
  if (order === 1) orders = new Array(steps).fill(1);
  else if (lowerOrderFinal) {
    orders = [];
    if (steps % 2 === 0) {
      for (let i = 0; i < steps / 2 - 1; i++) orders.push(1, 2);
      orders.push(1, 1);
    } else {
      for (let i = 0; i < Math.floor(steps / 2); i++) orders.push(1, 2);
      orders.push(1);
    }
  } else {
    orders = [];
    for (let i = 0; i < Math.floor(steps / 2); i++) orders.push(1, 2);
  }
  if (finalZero) orders[orders.length - 1] = 1;
  return orders;
}

export const dpmpp2s: SamplerDef<SinglestepSchedule> = {
  className: "DPMSolverSinglestepScheduler",
  schedule(cfg: SchedulerConfig, steps: number): SinglestepSchedule {
    const T = num(cfg, "num_train_timesteps");
    const order = num(cfg, "solver_order");
    if (order < 1 || order > 2)
      throw new EaselError("E_NOT_SUPPORTED", `DPMSolverSinglestepScheduler with solver_order ${order} is not supported (1 or 2).`, {
        param: "solver_order",
      });
    const train = trainFromConfig(cfg);
    if (optNum(cfg, "lambda_min_clipped") !== null && Number.isFinite(cfg.lambda_min_clipped))
      throw new EaselError("E_NOT_SUPPORTED", "lambda_min_clipped is not supported here.", { param: "lambda_min_clipped" });
    let timesteps = npLinspace(0, T - 1, steps + 1).map(roundHalfEven).reverse().slice(0, steps);
    const s = train.sigmas;
    let sigmas: number[];
    const flow = bool(cfg, "use_flow_sigmas");
    if (bool(cfg, "use_karras_sigmas")) {
      sigmas = karrasSigmas(steps, optNum(cfg, "sigma_min") ?? s[0], optNum(cfg, "sigma_max") ?? s[T - 1]);
      timesteps = sigmas.map((x) => roundHalfEven(sigmaToT(x, train.logSigmas)));
    } else if (bool(cfg, "use_exponential_sigmas")) {
      sigmas = exponentialSigmas(steps, optNum(cfg, "sigma_min") ?? s[0], optNum(cfg, "sigma_max") ?? s[T - 1]);
      timesteps = sigmas.map((x) => Math.trunc(sigmaToT(x, train.logSigmas)));
    } else if (flow) {
      const shift = num(cfg, "flow_shift");
      sigmas = npLinspace(1, 1 / T, steps + 1).map((a) => flowShift(1 - a, shift)).reverse().slice(0, -1);
      timesteps = sigmas.map((x) => Math.trunc(x * T));
    } else if (bool(cfg, "use_beta_sigmas")) {
      throw new EaselError("E_NOT_SUPPORTED", "use_beta_sigmas is not supported.", { param: "use_beta_sigmas" });
    } else sigmas = timesteps.map((t) => interpIndex(t, s));
    const finalType = str(cfg, "final_sigmas_type");
    const last = finalType === "zero" ? 0 : s[0];
    // diffusers turns lower_order_final on when steps % order != 0 or the final σ is zero.
    const lof = bool(cfg, "lower_order_final") || steps % order !== 0 || finalType === "zero";
    return {
      timesteps,
      sigmas: [...sigmas, last].map(f32),
      initNoiseSigma: 1,
      order: 1,
      orders: orderList(steps, order, lof, finalType === "zero"),
      flow,
    };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: SinglestepSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    rejectUnsupported(cfg, this.className, { algorithm_type: ["dpmsolver++", "sde-dpmsolver++"], solver_type: ["midpoint", "heun"], thresholding: false });
    const p = prediction(cfg, ["epsilon", "v_prediction", "sample", "flow_prediction"]);
    const sde = cfg.algorithm_type === "sde-dpmsolver++";
    const heun = cfg.solver_type === "heun";
    const as = s.flow ? flowAlphaSigma : vpAlphaSigma;
    const lambda = (sig: number) => {
      const [a, st] = as(sig);
      return Math.log(a) - Math.log(st);
    };
    const n = s.timesteps.length;
    let k = firstStepIndex(ctx, s.timesteps, n - 1);
    let prevX0: Float32Array | null = null;
    let base: Float32Array = x; // the sample at the start of the current singlestep block
    for (let i = ctx.start; i < n; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const out = await ctx.call(x, i);
      const [a0, st0] = as(s.sigmas[k]);
      const x0 = alphaX0(p, out, x, a0, st0, s.sigmas[k]);
      const noise = sde ? ctx.randn() : null;
      let order = s.orders[k];
      if (order === 2 && prevX0 === null) order = 1;
      if (order === 1) base = x;
      const [aT, sT] = as(s.sigmas[k + 1]);
      let nx: Float32Array;
      if (order === 1) {
        const h = lambda(s.sigmas[k + 1]) - lambda(s.sigmas[k]);
        const [, sS] = as(s.sigmas[k]);
        if (!sde) nx = combine([sT / sS, base], [-aT * Math.expm1(-h), x0]);
        else nx = combine([(sT / sS) * Math.exp(-h), base], [aT * -Math.expm1(-2 * h), x0], [sT * Math.sqrt(-Math.expm1(-2 * h)), noise as Float32Array]);
      } else {
        // Second order over [s1, t] with the model evaluated at s0 (the block's midpoint).
        checkIndex(k - 1, s.sigmas.length, this.className);
        const [, sS1] = as(s.sigmas[k - 1]);
        const h = lambda(s.sigmas[k + 1]) - lambda(s.sigmas[k - 1]);
        const h0 = lambda(s.sigmas[k]) - lambda(s.sigmas[k - 1]);
        const r0 = h0 / h;
        const m1 = prevX0 as Float32Array;
        const cx = sde ? (sT / sS1) * Math.exp(-h) : sT / sS1;
        const c0 = sde ? aT * -Math.expm1(-2 * h) : -aT * Math.expm1(-h);
        let c1: number;
        if (!sde) c1 = heun ? aT * (Math.expm1(-h) / h + 1) : -0.5 * aT * Math.expm1(-h);
        else c1 = heun ? aT * (-Math.expm1(-2 * h) / (-2 * h) + 1) : 0.5 * aT * -Math.expm1(-2 * h);
        const cn = sde ? sT * Math.sqrt(-Math.expm1(-2 * h)) : 0;
        nx = new Float32Array(x.length);
        for (let j = 0; j < x.length; j++) {
          const d1 = (x0[j] - m1[j]) / r0;
          nx[j] = cx * base[j] + c0 * m1[j] + c1 * d1 + (noise ? cn * noise[j] : 0);
        }
      }
      prevX0 = x0;
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise(s: SinglestepSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
    const [a, st] = (s.flow ? flowAlphaSigma : vpAlphaSigma)(s.sigmas[index]);
    return combine([a, x0], [st, noise]);
  },
};

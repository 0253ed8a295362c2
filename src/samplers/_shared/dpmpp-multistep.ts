/**
 * The DPM-Solver++ multistep loop (Lu et al. 2022), orders 1 and 2, dpmsolver++ / sde-dpmsolver++, midpoint or heun,
 * in diffusers' (α_t, σ_t) form: `DPMSolverMultistepScheduler` (VP and flow σ) and `EDMDPMSolverMultistepScheduler`
 * (α = 1) both run it.
 */
import { EaselError } from "../../core/errors.ts";
import type { AlphaSigma } from "./alpha-sigma.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig } from "./config.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type Schedule } from "./types.ts";

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

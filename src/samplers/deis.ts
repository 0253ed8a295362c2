/** DEIS multistep (Zhang & Chen 2022), log-ρ form, orders 1-2: diffusers `DEISMultistepScheduler`. */
import { EaselError } from "../core/errors.ts";
import { flowAlphaSigma, vpAlphaSigma } from "./_shared/alpha-sigma.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig } from "./_shared/config.ts";
import { multistepGrid, toF32 } from "./_shared/multistep-schedule.ts";
import { alphaX0, prediction } from "./_shared/predict.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

interface DeisSchedule extends Schedule {
  flow: boolean;
}

export const deis: SamplerDef<DeisSchedule> = {
  className: "DEISMultistepScheduler",
  schedule(cfg: SchedulerConfig, steps: number): DeisSchedule {
    const g = multistepGrid(cfg, steps);
    // DEIS ends at the smallest training σ (plain grid) or repeats its last σ (ramps).
    const last = g.kind === "plain" ? g.trainSigma0 : g.sigmas[g.sigmas.length - 1];
    return { timesteps: g.timesteps, sigmas: toF32([...g.sigmas, last]), initNoiseSigma: 1, order: 1, flow: g.kind === "flow" };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: DeisSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const c = { ...cfg };
    if (c.algorithm_type === "dpmsolver" || c.algorithm_type === "dpmsolver++") c.algorithm_type = "deis";
    if (["midpoint", "heun", "bh1", "bh2"].includes(c.solver_type as string)) c.solver_type = "logrho";
    rejectUnsupported(c, this.className, { algorithm_type: "deis", solver_type: "logrho", thresholding: false });
    const order = num(c, "solver_order");
    if (order < 1 || order > 2)
      throw new EaselError("E_NOT_SUPPORTED", `DEIS with solver_order ${order} is not supported (1 or 2).`, { param: "solver_order" });
    const p = prediction(c, ["epsilon", "v_prediction", "sample", "flow_prediction"]);
    const as = s.flow ? flowAlphaSigma : vpAlphaSigma;
    const n = s.timesteps.length;
    let k = firstStepIndex(ctx, s.timesteps, n - 1);
    let prevEps: Float32Array | null = null;
    let lowerOrderNums = 0;
    for (let i = ctx.start; i < n; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const out = await ctx.call(x, i);
      const [aS, sS] = as(s.sigmas[k]);
      const x0 = alphaX0(p, out, x, aS, sS, s.sigmas[k]);
      // DEIS works on ε: re-derive it from the (possibly converted) x0, as diffusers does.
      const eps = combine([1 / sS, x], [-aS / sS, x0]);
      const lowerOrderFinal = k === n - 1 && bool(c, "lower_order_final") && n < 15;
      const [aT, sT] = as(s.sigmas[k + 1]);
      let nx: Float32Array;
      if (order === 1 || lowerOrderNums < 1 || lowerOrderFinal || prevEps === null) {
        const h = Math.log(aT) - Math.log(sT) - (Math.log(aS) - Math.log(sS));
        nx = combine([aT / aS, x], [-sT * Math.expm1(h), eps]);
      } else {
        checkIndex(k - 1, s.sigmas.length, this.className);
        const [a1, s1] = as(s.sigmas[k - 1]);
        const rt = sT / aT;
        const r0 = sS / aS;
        const r1 = s1 / a1;
        const ind = (t: number, b: number, cc: number) => (t * (-Math.log(cc) + Math.log(t) - 1)) / (Math.log(b) - Math.log(cc));
        const coef1 = ind(rt, r0, r1) - ind(r0, r0, r1);
        const coef2 = ind(rt, r1, r0) - ind(r0, r1, r0);
        nx = combine([aT / aS, x], [aT * coef1, eps], [aT * coef2, prevEps]);
      }
      prevEps = eps;
      if (lowerOrderNums < order) lowerOrderNums++;
      x = nx;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise(s: DeisSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
    const [a, st] = (s.flow ? flowAlphaSigma : vpAlphaSigma)(s.sigmas[index]);
    return combine([a, x0], [st, noise]);
  },
};

/** UniPC multistep predictor-corrector (Zhao et al. 2023), data prediction, bh1/bh2: diffusers `UniPCMultistepScheduler`. */
import { EaselError } from "../core/errors.ts";
import { flowAlphaSigma, vpAlphaSigma } from "./_shared/alpha-sigma.ts";
import { bool, num, rejectUnsupported, type SchedulerConfig, str } from "./_shared/config.ts";
import { multistepGrid, toF32 } from "./_shared/multistep-schedule.ts";
import { alphaX0, prediction } from "./_shared/predict.ts";
import { checkIndex, combine, firstStepIndex, type LoopContext, type SamplerDef, type Schedule } from "./_shared/types.ts";

interface UniPcSchedule extends Schedule {
  flow: boolean;
}

/** Solves the small dense system A·x = b (Gaussian elimination with partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

export const unipc: SamplerDef<UniPcSchedule> = {
  className: "UniPCMultistepScheduler",
  schedule(cfg: SchedulerConfig, steps: number): UniPcSchedule {
    const g = multistepGrid(cfg, steps);
    const finalType = str(cfg, "final_sigmas_type");
    if (finalType !== "zero" && finalType !== "sigma_min")
      throw new EaselError("E_NOT_SUPPORTED", `final_sigmas_type "${finalType}" is not supported.`, { param: "final_sigmas_type" });
    const last = finalType === "zero" ? 0 : g.kind === "plain" ? g.trainSigma0 : g.sigmas[g.sigmas.length - 1];
    return { timesteps: g.timesteps, sigmas: toF32([...g.sigmas, last]), initNoiseSigma: 1, order: 1, flow: g.kind === "flow" };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: UniPcSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    // diffusers' constructor maps other solvers' names (logrho, midpoint, heun) onto bh2.
    if (cfg.solver_type !== "bh1" && cfg.solver_type !== "bh2") cfg = { ...cfg, solver_type: "bh2" };
    rejectUnsupported(cfg, this.className, { thresholding: false, predict_x0: true, solver_p: null });
    const p = prediction(cfg, ["epsilon", "v_prediction", "sample", "flow_prediction"]);
    const order = num(cfg, "solver_order");
    const bh1 = cfg.solver_type === "bh1";
    const disabled = (cfg.disable_corrector as number[] | undefined) ?? [];
    const as = s.flow ? flowAlphaSigma : vpAlphaSigma;
    const lambda = (sig: number) => {
      const [a, st] = as(sig);
      return Math.log(a) - Math.log(st);
    };
    const n = s.timesteps.length;
    let k = firstStepIndex(ctx, s.timesteps, n - 1);
    const outs: Float32Array[] = []; // converted outputs, newest last (at most `order`)
    let lastSample: Float32Array | null = null;
    let thisOrder = 1;
    let lowerOrderNums = 0;
    // One UniPC update from σ index `from` to `to` with history outs (m0 = newest) and optional corrector term.
    const update = (xs: Float32Array, from: number, to: number, ord: number, offset: number, mT: Float32Array | null): Float32Array => {
      const [aT, sT] = as(s.sigmas[to]);
      const [, sS0] = as(s.sigmas[from]);
      const lS0 = lambda(s.sigmas[from]);
      const h = lambda(s.sigmas[to]) - lS0;
      const m0 = outs[outs.length - 1];
      const rks: number[] = [];
      const d1s: Float32Array[] = [];
      for (let i = 1; i < ord; i++) {
        const si = from - i - offset;
        checkIndex(si, s.sigmas.length, "UniPCMultistepScheduler");
        const mi = outs[outs.length - 1 - i];
        const rk = (lambda(s.sigmas[si]) - lS0) / h;
        rks.push(rk);
        d1s.push(combine([1 / rk, mi], [-1 / rk, m0]));
      }
      rks.push(1);
      const hh = -h;
      const hPhi1 = Math.expm1(hh);
      let hPhiK = hPhi1 / hh - 1;
      let fact = 1;
      const Bh = bh1 ? hh : Math.expm1(hh);
      const R: number[][] = [];
      const b: number[] = [];
      for (let i = 1; i <= ord; i++) {
        R.push(rks.map((r) => r ** (i - 1)));
        b.push((hPhiK * fact) / Bh);
        fact *= i + 1;
        hPhiK = hPhiK / hh - 1 / fact;
      }
      let rhos: number[];
      if (mT === null) rhos = d1s.length === 0 ? [] : ord === 2 ? [0.5] : solve(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1));
      else rhos = ord === 1 ? [0.5] : solve(R, b);
      const out = new Float32Array(xs.length);
      for (let j = 0; j < xs.length; j++) {
        let res = 0;
        for (let q = 0; q < d1s.length; q++) res += rhos[q] * d1s[q][j];
        if (mT !== null) res += rhos[rhos.length - 1] * (mT[j] - m0[j]);
        out[j] = (sT / sS0) * xs[j] - aT * hPhi1 * m0[j] - aT * Bh * res;
      }
      return out;
    };
    for (let i = ctx.start; i < n; i++, k++) {
      checkIndex(k + 1, s.sigmas.length, this.className);
      const out = await ctx.call(x, i);
      const [a, st] = as(s.sigmas[k]);
      const x0 = alphaX0(p, out, x, a, st, s.sigmas[k]);
      if (k > 0 && !disabled.includes(k - 1) && lastSample !== null) x = update(lastSample, k - 1, k, thisOrder, 0, x0);
      outs.push(x0);
      if (outs.length > order) outs.shift();
      const want = bool(cfg, "lower_order_final") ? Math.min(order, n - k) : order;
      thisOrder = Math.min(want, lowerOrderNums + 1);
      lastSample = x;
      x = update(x, k, k + 1, thisOrder, 0, null);
      if (lowerOrderNums < order) lowerOrderNums++;
      ctx.report(i, x, x0);
    }
    return x;
  },
  addNoise(s: UniPcSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
    const [a, st] = (s.flow ? flowAlphaSigma : vpAlphaSigma)(s.sigmas[index]);
    return combine([a, x0], [st, noise]);
  },
};

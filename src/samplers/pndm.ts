/** Pseudo numerical methods (PNDM / PLMS, Liu et al. 2022): diffusers `PNDMScheduler`, PRK warm-up or PLMS only. */
import { EaselError } from "../core/errors.ts";
import { type AlphaSchedule, addAlphaNoise, alphaAt } from "./_shared/alpha-space.ts";
import { bool, num, type SchedulerConfig } from "./_shared/config.ts";
import { prediction } from "./_shared/predict.ts";
import { trainFromConfig } from "./_shared/schedules/discrete.ts";
import { npArangeDown, npLinspace, roundHalfEven } from "./_shared/schedules/numeric.ts";
import { checkSpacing } from "./_shared/schedules/spacing.ts";
import type { LoopContext, SamplerDef } from "./_shared/types.ts";

const PNDM_ORDER = 4;

export interface PndmSchedule extends AlphaSchedule {
  prkTimesteps: number[];
  plmsTimesteps: number[];
  /** set_timesteps' num_inference_steps (the PLMS step size is num_train_timesteps // it). */
  numInferenceSteps: number;
}

export const pndm: SamplerDef<PndmSchedule> = {
  className: "PNDMScheduler",
  schedule(cfg: SchedulerConfig, steps: number): PndmSchedule {
    const T = num(cfg, "num_train_timesteps");
    const spacing = checkSpacing(cfg.timestep_spacing);
    let ts: number[]; // ascending
    if (spacing === "linspace") ts = npLinspace(0, T - 1, steps).map(roundHalfEven);
    else if (spacing === "leading") {
      const ratio = Math.floor(T / steps);
      ts = Array.from({ length: steps }, (_, i) => i * ratio + num(cfg, "steps_offset"));
    } else ts = npArangeDown(T, 0, -T / steps).map((v) => roundHalfEven(v) - 1).reverse();
    let prk: number[] = [];
    let plms: number[];
    if (bool(cfg, "skip_prk_steps")) {
      // numpy slices, so one step gives the single timestep (ts[-2:-1] is empty), not a hole.
      plms = [...ts.slice(0, -1), ...ts.slice(-2, -1), ...ts.slice(-1)].reverse();
    } else {
      // diffusers fails (array shape mismatch) below 4 steps: the Runge-Kutta warm-up needs 4 timesteps.
      if (steps < PNDM_ORDER)
        throw new EaselError("E_INPUT_INVALID", `steps must be at least ${PNDM_ORDER} for PNDM with Runge-Kutta warm-up.`, {
          param: "steps",
          details: { min: PNDM_ORDER },
        });
      const half = Math.floor(Math.floor(T / steps) / 2);
      const lastK = ts.slice(-PNDM_ORDER);
      const base: number[] = [];
      for (const t of lastK) base.push(t, t + half);
      const rep: number[] = [];
      for (const t of base.slice(0, -1)) rep.push(t, t);
      prk = rep.slice(1, -1).reverse();
      plms = ts.slice(0, -3).reverse();
    }
    const train = trainFromConfig(cfg);
    const finalAlphaCumprod = bool(cfg, "set_alpha_to_one") ? 1 : train.alphasCumprod[0];
    return {
      timesteps: [...prk, ...plms],
      sigmas: [],
      initNoiseSigma: 1,
      order: 1,
      train,
      finalAlphaCumprod,
      prkTimesteps: prk,
      plmsTimesteps: plms,
      numInferenceSteps: steps,
    };
  },
  async sample(ctx: LoopContext, x: Float32Array, s: PndmSchedule, cfg: SchedulerConfig): Promise<Float32Array> {
    const p = prediction(cfg, ["epsilon", "v_prediction"]);
    const ratio = Math.floor(num(cfg, "num_train_timesteps") / s.numInferenceSteps);
    // Transfer from timestep t to prev with ε (diffusers' `_get_prev_sample`, formula (9) of the paper).
    const transfer = (sample: Float32Array, t: number, prev: number, e: Float32Array): Float32Array => {
      const a = alphaAt(s, t);
      const aPrev = alphaAt(s, prev);
      const b = 1 - a;
      const bPrev = 1 - aPrev;
      const cs = Math.sqrt(aPrev / a);
      const denom = a * Math.sqrt(bPrev) + Math.sqrt(a * b * aPrev);
      const ce = (aPrev - a) / denom;
      const out = new Float32Array(sample.length);
      for (let j = 0; j < out.length; j++) {
        const eps = p === "v_prediction" ? Math.sqrt(a) * e[j] + Math.sqrt(b) * sample[j] : e[j];
        out[j] = cs * sample[j] - ce * eps;
      }
      return out;
    };
    let ets: Float32Array[] = [];
    let counter = 0;
    let curModelOutput: Float32Array | null = null;
    let curSample: Float32Array | null = null;
    const skipPrk = bool(cfg, "skip_prk_steps");
    for (let i = ctx.start; i < s.timesteps.length; i++) {
      let t = s.timesteps[i];
      let e = await ctx.call(x, i);
      if (counter < s.prkTimesteps.length && !skipPrk) {
        // Runge-Kutta warm-up: 4 calls per step, weights 1/6, 1/3, 1/3, 1/6.
        const prev = t - (counter % 2 ? 0 : Math.floor(ratio / 2));
        const tk = s.prkTimesteps[Math.floor(counter / 4) * 4];
        const phase = counter % 4;
        const w = phase === 0 || phase === 3 ? 1 / 6 : 1 / 3;
        if (phase === 0) {
          curModelOutput = scaleAdd(null, e, w);
          ets.push(e);
          curSample = x;
        } else if (phase < 3) {
          curModelOutput = scaleAdd(curModelOutput, e, w);
        } else {
          e = scaleAdd(curModelOutput, e, w);
          curModelOutput = null;
        }
        x = transfer(curSample ?? x, tk, prev, e);
      } else {
        let prev = t - ratio;
        if (counter !== 1) {
          ets = ets.slice(-3);
          ets.push(e);
        } else {
          prev = t;
          t = t + ratio;
        }
        let sample = x;
        const n = ets.length;
        if (n === 1 && counter === 0) {
          curSample = x;
        } else if (n === 1 && counter === 1) {
          e = mix([0.5, e], [0.5, ets[0]]);
          sample = curSample as Float32Array;
          curSample = null;
        } else if (n === 2) e = mix([1.5, ets[1]], [-0.5, ets[0]]);
        else if (n === 3) e = mix([23 / 12, ets[2]], [-16 / 12, ets[1]], [5 / 12, ets[0]]);
        else e = mix([55 / 24, ets[3]], [-59 / 24, ets[2]], [37 / 24, ets[1]], [-9 / 24, ets[0]]);
        x = transfer(sample, t, prev, e);
      }
      counter++;
      ctx.report(i, x);
    }
    return x;
  },
  addNoise: addAlphaNoise,
};

function scaleAdd(acc: Float32Array | null, v: Float32Array, w: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = (acc ? acc[i] : 0) + w * v[i];
  return out;
}

function mix(...terms: [number, Float32Array][]): Float32Array {
  const n = terms[0][1].length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const [c, v] of terms) s += c * v[i];
    out[i] = s;
  }
  return out;
}

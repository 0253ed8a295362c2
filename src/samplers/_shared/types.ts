/**
 * The contract between the sampler registry and one sampler file. A sampler file implements diffusers'
 * `set_timesteps` (its `schedule`) and the whole denoising loop (its `sample`), with history as locals.
 * All latents are flat Float32Arrays of the latent shape [B, C, H, W]; arithmetic runs in float64 and is
 * stored as float32 after every step, like diffusers' float32 step math.
 */
import { EaselError } from "../../core/errors.ts";
import type { SchedulerConfig } from "./config.ts";

export interface Schedule {
  /** The timestep value the network sees at each call, in call order (diffusers' `scheduler.timesteps`). */
  timesteps: number[];
  /** diffusers' `scheduler.sigmas` (empty for classes without one, e.g. DDIM). */
  sigmas: number[];
  initNoiseSigma: number;
  /** diffusers' `scheduler.order` (used by img2img's start index). */
  order: number;
}

export interface LoopContext {
  /** First index into `timesteps` to run (0 for text-to-image; img2img starts later). */
  start: number;
  /** True when the pipeline called `set_begin_index(start)` (img2img); otherwise the first step index is
   * found from the first timestep value, as diffusers' `_init_step_index` does. */
  beginIndexSet: boolean;
  /** Runs the network on the scaled input at call index i (timestep = schedule.timesteps[i]). */
  call(xIn: Float32Array, i: number): Promise<Float32Array>;
  /** Progress after call index i, with the current denoised estimate when the sampler has one. */
  report(i: number, x: Float32Array, denoised?: Float32Array): void;
  /** One unit-normal draw of the latent shape (the step noise a stochastic scheduler consumes). */
  randn(): Float32Array;
  /** One draw of DPM-Solver-SDE's Brownian increment (injected; falls back to randn()). */
  sdeRandn(): Float32Array;
}

export interface SamplerDef<S extends Schedule = Schedule> {
  className: string;
  /** diffusers' `set_timesteps(steps)` on the resolved config. Throws E_INPUT_INVALID for steps it cannot do. */
  schedule(cfg: SchedulerConfig, steps: number): S;
  sample(ctx: LoopContext, x: Float32Array, s: S, cfg: SchedulerConfig): Promise<Float32Array>;
  /** img2img: diffusers' `add_noise` (flow: `scale_noise`) at step index `index`. */
  addNoise(s: S, cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array;
}

/** diffusers' `index_for_timestep`: the second match when the value repeats (so a duplicated first
 * timestep starts at index 1), `whenMissing` when absent. */
export function indexForTimestep(timesteps: number[], t: number, whenMissing = -1): number {
  const hits: number[] = [];
  for (let i = 0; i < timesteps.length; i++) if (timesteps[i] === t) hits.push(i);
  if (hits.length === 0) return whenMissing;
  return hits.length > 1 ? hits[1] : hits[0];
}

/** The step index the scheduler starts at (diffusers' `_init_step_index`). */
export function firstStepIndex(ctx: LoopContext, timesteps: number[], whenMissing = -1): number {
  if (ctx.beginIndexSet) return ctx.start;
  return indexForTimestep(timesteps, timesteps[ctx.start], whenMissing);
}

/** out = Σ c_k · v_k, computed in float64 per element and rounded once to float32. */
export function combine(...terms: [number, Float32Array][]): Float32Array {
  const n = terms[0][1].length;
  const out = new Float32Array(n);
  if (terms.length === 1) {
    const [[a, x]] = terms;
    for (let i = 0; i < n; i++) out[i] = a * x[i];
  } else if (terms.length === 2) {
    const [[a, x], [b, y]] = terms;
    for (let i = 0; i < n; i++) out[i] = a * x[i] + b * y[i];
  } else if (terms.length === 3) {
    const [[a, x], [b, y], [c, z]] = terms;
    for (let i = 0; i < n; i++) out[i] = a * x[i] + b * y[i] + c * z[i];
  } else {
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const [c, v] of terms) sum += c * v[i];
      out[i] = sum;
    }
  }
  return out;
}

/** x · c as float32. */
export function scale(x: Float32Array, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * c;
  return out;
}

/** Throws the error diffusers raises when a step runs past the end of its schedule (IndexError). */
export function checkIndex(k: number, length: number, className: string): void {
  if (k < 0 || k >= length) {
    throw new EaselError(
      "E_NOT_SUPPORTED",
      `${className}: step index ${k} is out of range for a schedule of ${length} entries; diffusers raises IndexError for this scheduler configuration.`,
      { param: "scheduler" },
    );
  }
}

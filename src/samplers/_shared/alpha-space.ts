/**
 * Helpers shared by the α-space schedulers (DDIM, DDPM, PNDM, LCM): ᾱ lookups and `add_noise`.
 */
import type { SchedulerConfig } from "./config.ts";
import type { TrainSchedule } from "./schedules/betas.ts";
import { combine, type Schedule } from "./types.ts";

export interface AlphaSchedule extends Schedule {
  train: TrainSchedule;
  finalAlphaCumprod: number;
}

/** ᾱ at an integer timestep, or the final ᾱ for negative ones. */
export function alphaAt(s: AlphaSchedule, t: number, whenNegative = s.finalAlphaCumprod): number {
  return t >= 0 ? s.train.alphasCumprod[t] : whenNegative;
}

/** diffusers' α-space `add_noise`: sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·noise at the start timestep. */
export function addAlphaNoise(s: AlphaSchedule, _cfg: SchedulerConfig, x0: Float32Array, noise: Float32Array, index: number): Float32Array {
  const a = s.train.alphasCumprod[s.timesteps[index]];
  return combine([Math.fround(Math.sqrt(a)), x0], [Math.fround(Math.sqrt(Math.fround(1 - a))), noise]);
}

export function clampInPlace(x: Float32Array, r: number): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = Math.min(Math.max(x[i], -r), r);
  return x;
}

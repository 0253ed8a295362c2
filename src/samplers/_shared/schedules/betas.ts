/**
 * Training noise schedule of a VP (DDPM-style) model as diffusers builds it: betas, cumulative alphas and
 * the "VE sigmas" sqrt((1 - ᾱ)/ᾱ), all float32 like the torch tensors they come from.
 */
import { EaselError } from "../../../core/errors.ts";
import { f32, torchLinspaceF32 } from "./numeric.ts";

export interface TrainSchedule {
  /** ᾱ_t, t = 0..T-1 (float32 values). */
  alphasCumprod: Float64Array;
  /** σ_t = sqrt((1-ᾱ_t)/ᾱ_t), ascending in t (float32 values). */
  sigmas: Float64Array;
  /** ln σ_t as numpy computes it on the float32 array (float32 values). */
  logSigmas: Float64Array;
}

export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas?: number[] | null;
}

/** Glide's cosine schedule (`squaredcos_cap_v2`), computed in float64 then stored as float32. */
function cosineBetas(n: number): number[] {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(f32(Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999)));
  return out;
}

export function trainSchedule(cfg: BetaConfig): TrainSchedule {
  const n = cfg.num_train_timesteps;
  let betas: number[];
  if (cfg.trained_betas != null) betas = cfg.trained_betas.map(f32);
  else if (cfg.beta_schedule === "linear") betas = torchLinspaceF32(cfg.beta_start, cfg.beta_end, n);
  else if (cfg.beta_schedule === "scaled_linear")
    betas = torchLinspaceF32(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, n).map((b) => f32(b * b));
  else if (cfg.beta_schedule === "squaredcos_cap_v2") betas = cosineBetas(n);
  else
    throw new EaselError("E_NOT_SUPPORTED", `beta_schedule "${cfg.beta_schedule}" is not supported.`, {
      param: "beta_schedule",
      details: { allowed: ["linear", "scaled_linear", "squaredcos_cap_v2"] },
    });
  const alphasCumprod = new Float64Array(n);
  const sigmas = new Float64Array(n);
  const logSigmas = new Float64Array(n);
  // torch.cumprod on CPU accumulates float32 inputs in double and rounds each output.
  let acc = 1;
  for (let i = 0; i < n; i++) {
    acc *= f32(1 - betas[i]);
    const a = f32(acc);
    alphasCumprod[i] = a;
    sigmas[i] = f32(Math.sqrt(f32(f32(1 - a) / a)));
    logSigmas[i] = f32(Math.log(sigmas[i]));
  }
  return { alphasCumprod, sigmas, logSigmas };
}

/** diffusers `_sigma_to_t`: piecewise log-linear inverse of the training sigmas (float t). */
export function sigmaToT(sigma: number, logSigmas: Float64Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const n = logSigmas.length;
  // low = last index whose log σ is <= log σ (the argmax of the cumulative count), capped at n-2.
  let count = 0;
  let low = 0;
  let best = -1;
  for (let i = 0; i < n; i++) {
    if (logSigma - logSigmas[i] >= 0) count++;
    if (count > best) {
      best = count;
      low = i;
    }
  }
  low = Math.min(low, n - 2);
  const lo = logSigmas[low];
  const hi = logSigmas[low + 1];
  let w = (lo - logSigma) / f32(lo - hi);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * low + w * (low + 1);
}

/**
 * Noise-level schedules, each a plain function: Karras et al. 2022 (ρ = 7), exponential (log-uniform σ),
 * Lu et al. 2022 uniform-λ, the SD3 flow-matching shift, and EDM's float32 Karras ramp.
 */
import { f32, npLinspace, torchLinspaceF32 } from "./numeric.ts";

/** Karras σ ramp from σ_max down to σ_min in n points, float64 (numpy) like diffusers' `_convert_to_karras`. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): number[] {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** exp(linspace(ln σ_max, ln σ_min, n)), diffusers' `_convert_to_exponential`. */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): number[] {
  return npLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/** Uniform steps in λ between λ_max and λ_min (DPM-Solver `use_lu_lambdas`); returns λ values. */
export function luLambdas(n: number, lambdaMin: number, lambdaMax: number): number[] {
  return npLinspace(0, 1, n).map((r) => lambdaMax + r * (lambdaMin - lambdaMax));
}

/** Flow-matching timestep shift σ' = sσ / (1 + (s-1)σ) (SD3 `shift`). */
export function flowShift(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** EDM Karras σ list computed like torch does it: float32 ramp and float32 arithmetic. */
export function edmKarrasSigmasF32(n: number, sigmaMin: number, sigmaMax: number, rho: number): number[] {
  // Python scalars are rounded to float32 when they meet the float32 ramp tensor.
  const maxInv = f32(sigmaMax ** (1 / rho));
  const d = f32(sigmaMin ** (1 / rho) - sigmaMax ** (1 / rho));
  return torchLinspaceF32(0, 1, n).map((r) => f32(f32(maxInv + f32(r * d)) ** rho));
}

/** EDM exponential σ list: exp(torch.linspace(ln σ_min, ln σ_max, n)) flipped, float32. */
export function edmExponentialSigmasF32(n: number, sigmaMin: number, sigmaMax: number): number[] {
  return torchLinspaceF32(Math.log(sigmaMin), Math.log(sigmaMax), n)
    .map((v) => f32(Math.exp(v)))
    .reverse();
}

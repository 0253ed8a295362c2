/** The (α_t, σ_t) parametrisation of a σ, shared by DPM-Solver++ (multistep, singlestep, EDM), DEIS and UniPC. */

/** diffusers' `_sigma_to_alpha_sigma_t` (VP: α = 1/sqrt(σ²+1); flow: α = 1 - σ; EDM: α = 1). */
export type AlphaSigma = (sigma: number) => [number, number];
export const vpAlphaSigma: AlphaSigma = (s) => {
  const a = 1 / Math.sqrt(s * s + 1);
  return [a, s * a];
};
export const flowAlphaSigma: AlphaSigma = (s) => [1 - s, s];
export const edmAlphaSigma: AlphaSigma = (s) => [1, s];

/**
 * The denoiser half of each scheduler: converting a raw network output (ε, v, x0, EDM F, flow velocity)
 * into the denoised estimate x0, with the exact formula and σ/α parametrisation diffusers uses.
 */
import { EaselError } from "../../core/errors.ts";

export type Prediction = "epsilon" | "v_prediction" | "sample" | "flow_prediction";

export function prediction(cfg: Record<string, unknown>, allowed: Prediction[] = ["epsilon", "v_prediction", "sample"]): Prediction {
  const p = cfg.prediction_type as Prediction;
  if (!allowed.includes(p))
    throw new EaselError("E_NOT_SUPPORTED", `prediction_type "${String(p)}" is not supported by this scheduler.`, {
      param: "prediction_type",
      details: { allowed },
    });
  return p;
}

/** σ-space (x = x0 + σ·ε): Euler, Heun, LMS, KDPM2, DPM-SDE. */
export function sigmaX0(p: Prediction, out: Float32Array, x: Float32Array, sigma: number): Float32Array {
  const r = new Float32Array(x.length);
  if (p === "epsilon") for (let i = 0; i < x.length; i++) r[i] = x[i] - sigma * out[i];
  else if (p === "v_prediction") {
    const a = -sigma / Math.sqrt(sigma * sigma + 1);
    const b = 1 / (sigma * sigma + 1);
    for (let i = 0; i < x.length; i++) r[i] = out[i] * a + x[i] * b;
  } else r.set(out);
  return r;
}

/** α-space (x = α·x0 + σ_t·ε): DDIM, DDPM, DPM-Solver, UniPC, DEIS, LCM. `sigma` is the VE σ (flow: the flow σ). */
export function alphaX0(p: Prediction, out: Float32Array, x: Float32Array, alpha: number, sigmaT: number, sigma = sigmaT): Float32Array {
  const r = new Float32Array(x.length);
  if (p === "epsilon") for (let i = 0; i < x.length; i++) r[i] = (x[i] - sigmaT * out[i]) / alpha;
  else if (p === "v_prediction") for (let i = 0; i < x.length; i++) r[i] = alpha * x[i] - sigmaT * out[i];
  else if (p === "flow_prediction") for (let i = 0; i < x.length; i++) r[i] = x[i] - sigma * out[i];
  else r.set(out);
  return r;
}

/** EDM preconditioning (Karras et al. 2022): x0 = c_skip·x + c_out·F. */
export function edmX0(p: Prediction, out: Float32Array, x: Float32Array, sigma: number, sigmaData: number): Float32Array {
  const v = sigma * sigma + sigmaData * sigmaData;
  const cSkip = (sigmaData * sigmaData) / v;
  const cOut = ((p === "v_prediction" ? -1 : 1) * sigma * sigmaData) / Math.sqrt(v);
  const r = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) r[i] = cSkip * x[i] + cOut * out[i];
  return r;
}

/** x / sqrt(σ² + 1): the σ-space schedulers' `scale_model_input` (the divisor is a float32 tensor value). */
export function scaleSigmaInput(x: Float32Array, sigma: number): Float32Array {
  const d = Math.fround(Math.sqrt(Math.fround(Math.fround(sigma * sigma) + 1)));
  const r = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) r[i] = x[i] / d;
  return r;
}

/**
 * Timestep spacings (`timestep_spacing`: linspace / leading / trailing, plus `steps_offset`) exactly as the
 * diffusers scheduler classes compute them. Three variants exist in diffusers and are kept apart on purpose.
 */
import { EaselError } from "../../../core/errors.ts";
import { f32, npArangeDown, npLinspace, roundHalfEven } from "./numeric.ts";

export type Spacing = "linspace" | "leading" | "trailing";

export function checkSpacing(spacing: unknown): Spacing {
  if (spacing === "linspace" || spacing === "leading" || spacing === "trailing") return spacing;
  throw new EaselError("E_NOT_SUPPORTED", `timestep_spacing "${String(spacing)}" is not supported.`, {
    param: "timestep_spacing",
    details: { allowed: ["linspace", "leading", "trailing"] },
  });
}

/** σ-space classes (Euler, Heun, LMS, KDPM2, DPM-SDE): descending float timesteps (float32 unless `f64`). */
export function sigmaSpaceTimesteps(spacing: Spacing, T: number, n: number, offset: number, f64 = false): number[] {
  const cast = f64 ? (v: number) => v : f32;
  if (spacing === "linspace") return npLinspace(0, T - 1, n).map(cast).reverse();
  if (spacing === "leading") {
    const ratio = Math.floor(T / n);
    const out: number[] = [];
    for (let i = n - 1; i >= 0; i--) out.push(i * ratio + offset);
    return out;
  }
  return npArangeDown(T, 0, -T / n).map((v) => roundHalfEven(v) - 1);
}

/** DDIM / DDPM / PNDM: integer timesteps, descending. */
export function integerTimesteps(spacing: Spacing, T: number, n: number, offset: number): number[] {
  if (spacing === "linspace") return npLinspace(0, T - 1, n).map(roundHalfEven).reverse();
  if (spacing === "leading") return sigmaSpaceTimesteps("leading", T, n, offset);
  return npArangeDown(T, 0, -T / n).map((v) => roundHalfEven(v) - 1);
}

/** DPM-Solver multistep / UniPC / DEIS: an n+1 point grid with its last point dropped (integer timesteps). */
export function multistepTimesteps(spacing: Spacing, last: number, T: number, n: number, offset: number): number[] {
  if (spacing === "linspace") return npLinspace(0, last - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
  if (spacing === "leading") {
    const ratio = Math.floor(last / (n + 1));
    const out: number[] = [];
    for (let i = n; i >= 1; i--) out.push(i * ratio + offset);
    return out;
  }
  return npArangeDown(last, 0, -T / n).map((v) => roundHalfEven(v) - 1);
}

/**
 * Schedule layouts of the two-stage samplers (Heun, KDPM2, KDPM2 ancestral, DPM-SDE, FlowMatch Heun): diffusers'
 * repeat_interleave of the σ and timestep lists, and KDPM2's log-space midpoint σ.
 */
import { f32 } from "./schedules/numeric.ts";

/** [a0, a1, a1, a2, a2, ...]: diffusers' repeat_interleave layout of two-stage schedulers. */
export function interleave2(v: number[], keepLast: boolean): number[] {
  const body = keepLast ? v.slice(1, -1) : v.slice(1);
  const out = [v[0]];
  for (const e of body) out.push(e, e);
  if (keepLast) out.push(v[v.length - 1]);
  return out;
}

/** [a0, a1, a1, ..., aN, aN, aN]: the KDPM2 layout (every entry after the first twice, the last thrice). */
export function interleaveAll(v: number[]): number[] {
  const out = [v[0]];
  for (const e of v.slice(1)) out.push(e, e);
  out.push(v[v.length - 1]);
  return out;
}

/** exp(lerp(ln a, ln b, ½)) in float32 (torch), with ln 0 = -inf giving 0. */
export function logMidpoint(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return f32(Math.exp(f32(f32(Math.log(b)) - f32(f32(Math.log(b)) - f32(Math.log(a))) * 0.5)));
}

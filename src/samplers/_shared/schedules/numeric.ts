/**
 * Numeric building blocks that reproduce the float32 / numpy behaviour diffusers' schedules depend on:
 * torch's float32 `linspace`, numpy's `linspace`, `arange`, round-half-to-even and `interp`.
 */

export const f32 = Math.fround;

/** numpy `round`: halves go to the even neighbour (JS Math.round sends them up). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

/** numpy.linspace in float64 (endpoint included, last value exactly `stop`). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

/** torch.linspace(start, end, steps, dtype=float32): float32 arithmetic, symmetric from both ends. */
export function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  if (steps === 1) return [f32(start)];
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(i < half ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1))));
  }
  return out;
}

/** numpy.arange(start, stop, step) for a negative float step. */
export function npArangeDown(start: number, stop: number, step: number): number[] {
  const n = Math.ceil((stop - start) / step);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(start + i * step);
  return out;
}

/** numpy.interp(x, arange(len(fp)), fp) for x inside [0, len-1]. */
export function interpIndex(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

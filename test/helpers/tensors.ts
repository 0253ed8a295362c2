/** Test helpers for tensors: the reference-format reader/writer and a tolerance check with a useful failure message. */
import assert from "node:assert/strict";

export * from "../../src/tensor/io.ts";

export interface CloseOptions {
  /** Absolute tolerance. */
  atol?: number;
  /** Relative tolerance, per element, on |reference|. */
  rtol?: number;
  /** Shape used to print the worst element's multi-dimensional index. */
  shape?: readonly number[];
  /** Name shown in the message. */
  what?: string;
}

type Values = ArrayLike<number> | { data: ArrayLike<number>; shape?: readonly number[] };

function unwrap(v: Values): { data: ArrayLike<number>; shape?: readonly number[] } {
  if (typeof (v as ArrayLike<number>).length === "number") return { data: v as ArrayLike<number> };
  return v as { data: ArrayLike<number>; shape?: readonly number[] };
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(i % shape[d]);
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/**
 * Asserts |actual - ref| <= tol element-wise. Default tolerance is the reference README's module tolerance
 * `1e-4 * max(1, max |ref|)`; with options it is `atol + rtol * |ref_i|`. Returns the max abs difference.
 */
export function expectClose(actual: Values, reference: Values, opts: CloseOptions = {}): number {
  const a = unwrap(actual);
  const r = unwrap(reference);
  const shape = opts.shape ?? r.shape ?? a.shape;
  const what = opts.what ? `${opts.what}: ` : "";
  assert.equal(a.data.length, r.data.length, `${what}length ${a.data.length} != reference length ${r.data.length}`);
  let maxRef = 0;
  for (let i = 0; i < r.data.length; i++) maxRef = Math.max(maxRef, Math.abs(r.data[i]));
  const useDefault = opts.atol === undefined && opts.rtol === undefined;
  const atol = useDefault ? 1e-4 * Math.max(1, maxRef) : (opts.atol ?? 0);
  const rtol = opts.rtol ?? 0;
  let maxDiff = 0;
  let worst = -1;
  let worstExcess = 0;
  let failures = 0;
  for (let i = 0; i < r.data.length; i++) {
    const diff = Math.abs(a.data[i] - r.data[i]);
    const tol = atol + rtol * Math.abs(r.data[i]);
    if (!(diff <= tol)) {
      failures++;
      const excess = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff - tol;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
    if (diff > maxDiff || Number.isNaN(diff)) maxDiff = Number.isNaN(diff) ? Number.NaN : Math.max(maxDiff, diff);
  }
  if (failures > 0) {
    const at = shape ? ` [${unravel(worst, shape).join(", ")}]` : "";
    assert.fail(
      `${what}${failures}/${r.data.length} values out of tolerance (atol ${atol.toExponential(3)}, rtol ${rtol}); ` +
        `worst at index ${worst}${at}: actual ${a.data[worst]}, reference ${r.data[worst]}, ` +
        `diff ${Math.abs(a.data[worst] - r.data[worst]).toExponential(3)}; max abs diff ${maxDiff}; max |ref| ${maxRef}`,
    );
  }
  return maxDiff;
}

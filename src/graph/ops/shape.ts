/** Shape and layout helpers over GraphBuilder (thin wrappers that keep call sites readable). */
import type { GraphBuilder, Value } from "../builder.ts";

/** Reshape to a constant target; 0 copies the input dim, -1 infers one dim. */
export function reshape(g: GraphBuilder, x: Value, shape: number[]): Value {
  return g.op("Reshape", [x, g.i64(shape)]);
}

export function transpose(g: GraphBuilder, x: Value, perm: number[]): Value {
  return g.op("Transpose", [x], { perm });
}

export function concat(g: GraphBuilder, xs: Value[], axis: number): Value {
  return g.op("Concat", xs, { axis });
}

/** The int64 shape vector of x. */
export function shapeOf(g: GraphBuilder, x: Value): Value {
  return g.op("Shape", [x]);
}

/** Slice of x on the given axes, [starts, ends) (ends may be dynamic Values). */
export function slice(g: GraphBuilder, x: Value, starts: number[] | Value, ends: number[] | Value, axes: number[]): Value {
  const s = Array.isArray(starts) ? g.i64(starts) : starts;
  const e = Array.isArray(ends) ? g.i64(ends) : ends;
  return g.op("Slice", [x, s, e, g.i64(axes)]);
}

/** Equal split of x along `axis` into `n` parts. */
export function split(g: GraphBuilder, x: Value, n: number, axis: number): Value[] {
  return g.opMulti("Split", [x], n, { axis });
}

export function unsqueeze(g: GraphBuilder, x: Value, axes: number[]): Value {
  return g.op("Unsqueeze", [x, g.i64(axes)]);
}

export function squeeze(g: GraphBuilder, x: Value, axes: number[]): Value {
  return g.op("Squeeze", [x, g.i64(axes)]);
}

export const add = (g: GraphBuilder, a: Value, b: Value): Value => g.op("Add", [a, b]);
export const mul = (g: GraphBuilder, a: Value, b: Value): Value => g.op("Mul", [a, b]);

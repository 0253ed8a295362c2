/**
 * Zod helpers for fields that some providers' own examples send as strings (Monica's `"seed": "0"`,
 * `"cfg_scale": "7.0"`, `"safety_check": "false"`). Only canonical numeric / boolean spellings are converted;
 * anything else still fails the inner schema with its normal message.
 */
import { z } from "zod";

const NUMERIC = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

/** `inner`, also accepting a string that spells a number ("42", "7.0"). */
export function numeric<T extends z.ZodType>(inner: T) {
  return z.preprocess((v) => (typeof v === "string" && NUMERIC.test(v) ? Number(v) : v), inner);
}

/** `inner`, also accepting the strings "true" / "false". */
export function booleanish<T extends z.ZodType>(inner: T) {
  return z.preprocess((v) => (v === "true" ? true : v === "false" ? false : v), inner);
}

/** A `WxH` size string, e.g. "1024x768". */
export const SIZE_RE = /^(\d{1,5})x(\d{1,5})$/;

export function parseSize(size: string): { width: number; height: number } {
  const m = SIZE_RE.exec(size);
  if (!m) throw new Error(`not a WxH size: ${size}`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

/**
 * The reference tensor format shared by the fixtures and `easel generate --dump-latents/--init-latents/--step-noise`:
 * tensor `NAME` is `NAME.bin` (raw little-endian values, row-major) plus `NAME.json` `{"shape": [...], "dtype": "..."}`.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { EaselError } from "../core/errors.ts";

export type RefDtype = "float32" | "int32" | "int64" | "uint8";
export type RefData = Float32Array | Int32Array | BigInt64Array | Uint8Array;

export interface RefTensor<D extends RefData = RefData> {
  shape: number[];
  dtype: RefDtype;
  data: D;
}

const BYTES: Record<RefDtype, number> = { float32: 4, int32: 4, int64: 8, uint8: 1 };

/** `x`, `x.bin` and `x.json` all name the tensor `x`. */
function baseOf(path: string): string {
  return path.replace(/\.(bin|json)$/, "");
}

function bad(path: string, what: string): EaselError {
  return new EaselError("E_INPUT_INVALID", `${path}: ${what}`, { details: { file: path } });
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads a reference tensor; the byte count must match shape x dtype. */
export function readRefTensor(path: string): RefTensor {
  const base = baseOf(path);
  for (const f of [`${base}.json`, `${base}.bin`]) if (!existsSync(f)) throw bad(f, "tensor file is missing");
  let meta: { shape?: unknown; dtype?: unknown };
  try {
    meta = JSON.parse(readFileSync(`${base}.json`, "utf8"));
  } catch (e) {
    throw bad(`${base}.json`, `not valid JSON (${(e as Error).message})`);
  }
  const { shape, dtype } = meta;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`${base}.json`, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (typeof dtype !== "string" || !Object.hasOwn(BYTES, dtype)) {
    throw bad(`${base}.json`, `dtype ${JSON.stringify(dtype)} is not one of ${Object.keys(BYTES).join(", ")}`);
  }
  const dt = dtype as RefDtype;
  const raw = readFileSync(`${base}.bin`);
  const expected = numel(shape) * BYTES[dt];
  if (raw.byteLength !== expected) {
    throw bad(`${base}.bin`, `${raw.byteLength} bytes, but shape [${shape.join(", ")}] of ${dt} needs ${expected}`);
  }
  // Copy into a fresh ArrayBuffer: Buffer slices may be unaligned for typed-array views.
  const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer;
  const data =
    dt === "float32" ? new Float32Array(ab) : dt === "int32" ? new Int32Array(ab) : dt === "int64" ? new BigInt64Array(ab) : new Uint8Array(ab);
  return { shape: [...shape], dtype: dt, data };
}

/** Reads a float32 reference tensor (rejects other dtypes). */
export function readRefFloat32(path: string): RefTensor<Float32Array> {
  const t = readRefTensor(path);
  if (t.dtype !== "float32") throw bad(path, `dtype is ${t.dtype}, expected float32`);
  return t as RefTensor<Float32Array>;
}

/** Reads integer ids (int32 or int64) as plain numbers. */
export function readRefInts(path: string): { shape: number[]; data: number[] } {
  const t = readRefTensor(path);
  if (t.dtype === "float32") throw bad(path, "dtype is float32, expected an integer type");
  return { shape: t.shape, data: Array.from(t.data as ArrayLike<number | bigint>, Number) };
}

function dtypeOf(data: RefData): RefDtype {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  return "uint8";
}

/** Writes `base.bin` + `base.json`; the dtype follows the typed array. */
export function writeRefTensor(path: string, tensor: { shape: readonly number[]; data: RefData }): void {
  const base = baseOf(path);
  if (numel(tensor.shape) !== tensor.data.length) {
    throw new EaselError(
      "E_INPUT_INVALID",
      `writeRefTensor(${base}): ${tensor.data.length} values do not fill shape [${tensor.shape.join(", ")}]`,
    );
  }
  const d = tensor.data;
  writeFileSync(`${base}.bin`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  writeFileSync(`${base}.json`, `${JSON.stringify({ shape: [...tensor.shape], dtype: dtypeOf(d) })}\n`);
}

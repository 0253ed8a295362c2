/**
 * Seeded random weights written as safetensors, tensor by tensor: the values of every tiny checkpoint
 * (./tiny-checkpoint.ts) and of the benchmark's full-size random-weight models.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { EaselError } from "../../core/errors.ts";
import { DTYPE_SIZE, safetensorsPrefix } from "../../graph/safetensors.ts";
import type { RecordedWeight } from "../../graph/weights.ts";

export type RandomWeightDtype = "F32" | "F16";

/** FNV-1a over the UTF-16 code units of `s`, then mixed with `seed` through murmur3's finaliser. */
export function seedForTensor(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= seed >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32: a tiny 32-bit-state generator; plenty for random weights, and fast enough for 2.6 G values. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform(center - bound, center + bound) parameters of one tensor, from its name and shape alone. */
export function initFor(name: string, shape: readonly number[]): { center: number; bound: number } {
  if (shape.length >= 2) {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    return { center: 0, bound: 1 / Math.sqrt(fanIn) };
  }
  if (name.endsWith(".weight")) return { center: 1, bound: 0.1 };
  return { center: 0, bound: 0.05 };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> IEEE half bits, round to nearest even (overflow to inf, underflow through subnormals to 0). */
export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is the correct rounding
  return sign | h;
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming safetensors writer

/** Values generated and written per chunk: bounds memory for any tensor size. */
const CHUNK = 1 << 20;

/**
 * Writes `weights` as one safetensors file of seeded random values, tensor by tensor and chunk by chunk (memory
 * stays a few MiB whatever the model size). Header layout as the reference writer: JSON padded with spaces to a
 * multiple of 8 so every tensor starts aligned. Returns the number of data bytes written.
 */
export function writeRandomSafetensors(
  file: string,
  weights: readonly RecordedWeight[],
  opts: { seed: number; dtype: RandomWeightDtype; namespace?: string },
): number {
  const seen = new Set<string>();
  let pos = 0;
  const entries = weights.map((w) => {
    if (seen.has(w.name)) throw new EaselError("E_INTERNAL", `writeRandomSafetensors: duplicate tensor "${w.name}"`);
    seen.add(w.name);
    const byteLength = w.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[opts.dtype];
    pos += byteLength;
    return { name: w.name, dtype: opts.dtype, shape: w.shape, byteLength };
  });
  const prefix = safetensorsPrefix(entries, { format: "pt" });

  const fd = openSync(file, "w");
  try {
    writeAll(fd, prefix);
    const asF32 = new Float32Array(CHUNK);
    const asF16 = new Uint16Array(CHUNK);
    for (const w of weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const rand = mulberry32(seedForTensor(opts.seed, `${opts.namespace ?? ""}/${w.name}`));
      const { center, bound } = initFor(w.name, w.shape);
      for (let done = 0; done < count; done += CHUNK) {
        const n = Math.min(CHUNK, count - done);
        for (let i = 0; i < n; i++) asF32[i] = center + bound * (2 * rand() - 1);
        if (opts.dtype === "F32") {
          writeAll(fd, new Uint8Array(asF32.buffer, 0, n * 4));
        } else {
          for (let i = 0; i < n; i++) asF16[i] = floatToHalfBits(asF32[i]);
          writeAll(fd, new Uint8Array(asF16.buffer, 0, n * 2));
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return pos;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
}

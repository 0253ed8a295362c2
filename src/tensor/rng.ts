/**
 * torch-compatible CPU random numbers: `torch.Generator("cpu").manual_seed(s)` followed by `torch.randn(shape,
 * generator=g)` in float32, as torch 1.13+ does it on x86-64 (ATen's CPUGeneratorImpl, mt19937 engine,
 * `normal_fill_AVX2` for >= 16 contiguous float32 elements, the scalar double path below that).
 *
 * The >= 16 path is Box-Muller in blocks of 16 using float32 Cephes-style `log`/`sincos` polynomials (Pommier's
 * avx_mathfun as vendored by ATen). They are reproduced here in float32 arithmetic (`Math.fround` after every op),
 * with the multiply-adds that GCC contracts into FMA instructions evaluated as fused, so the output is bit-exact.
 */
import { EaselError } from "../core/errors.ts";
import type { NoiseSource } from "./noise.ts";

const N = 624;
const M = 397;

/** Standard 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), seeded the way torch's mt19937 is. */
class Mt19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed32: number) {
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1] ^ (s[j - 1] >>> 30);
      s[j] = (Math.imul(1812433253, prev) + j) >>> 0;
    }
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < N; i++) {
      const y = (s[i] & 0x80000000) | (s[(i + 1) % N] & 0x7fffffff);
      s[i] = s[(i + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  nextU32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

const f = Math.fround;
/** float32 fused multiply-add: the product of two float32 is exact in float64, so one rounding remains (double
 * rounding through float64 can differ from a true FMA only on exact float64 ties, which these inputs never hit). */
const fma = (a: number, b: number, c: number) => f(a * b + c);

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const bitsOf = (x: number) => {
  F32[0] = x;
  return U32[0];
};
const fromBits = (b: number) => {
  U32[0] = b >>> 0;
  return F32[0];
};

// Cephes float32 constants (as float32, the way the C source's float literals are).
const SQRTHF = f(Math.SQRT1_2);
const LOG_P = [7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f);
const LOG_Q1 = f(-2.1219444e-4);
const LOG_Q2 = f(0.693359375);
const DP1 = f(-0.78515625);
const DP2 = f(-2.4187564849853516e-4);
const DP3 = f(-3.774894977445941e-8);
const SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f);
const COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f);
const FOPI = f(1.27323954473516);
const TWO_PI = f(2 * Math.PI);

/** Cephes logf for 0 < x <= 1 (NaN for x <= 0), float32 arithmetic. */
function logf(x0: number): number {
  if (!(x0 > 0)) return Number.NaN;
  const xb = bitsOf(Math.max(x0, fromBits(0x00800000)));
  let e = f(((xb >>> 23) - 127) + 1);
  let x = fromBits((xb & ~0x7f800000) | 0x3f000000); // mantissa in [0.5, 1)
  if (x < SQRTHF) {
    e = f(e - 1);
    x = f(f(x - 1) + x);
  } else {
    x = f(x - 1);
  }
  const z = f(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < 9; k++) y = fma(y, x, LOG_P[k]);
  y = f(y * x);
  y = fma(y, z, f(e * LOG_Q1));
  y = fma(-z, 0.5, y);
  return fma(e, LOG_Q2, f(x + y));
}

/** Cephes sincosf for 0 <= x < 8192 (the only range Box-Muller uses: 2*pi*u), float32 arithmetic. */
function sincosf(xIn: number, out: Float64Array): void {
  let x = Math.abs(xIn);
  let j = Math.trunc(f(x * FOPI));
  j = (j + 1) & ~1;
  const y0 = j;
  const sinSwap = (j & 4) !== 0;
  const cosSwap = ((j - 2) & 4) === 0;
  const sinFromSinPoly = (j & 2) === 0;
  x = fma(y0, DP1, x);
  x = fma(y0, DP2, x);
  x = fma(y0, DP3, x);
  const z = f(x * x);
  let c = COS_P[0];
  c = fma(c, z, COS_P[1]);
  c = fma(c, z, COS_P[2]);
  c = f(c * z);
  c = fma(c, z, -f(z * 0.5));
  c = f(c + 1);
  let s = SIN_P[0];
  s = fma(s, z, SIN_P[1]);
  s = fma(s, z, SIN_P[2]);
  s = f(s * z);
  s = fma(s, x, x);
  let sinv = sinFromSinPoly ? s : c;
  let cosv = sinFromSinPoly ? c : s;
  if (xIn < 0 !== sinSwap) sinv = -sinv;
  if (cosSwap) cosv = -cosv;
  out[0] = sinv;
  out[1] = cosv;
}

/** In-place Box-Muller over one block of 16 uniforms at `o`: pairs (j, j+8). */
function boxMuller16(d: Float32Array, o: number, sc: Float64Array): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - d[o + j]);
    const u2 = d[o + j + 8];
    const r = f(Math.sqrt(f(-2 * logf(u1))));
    sincosf(f(TWO_PI * u2), sc);
    d[o + j] = r * sc[1];
    d[o + j + 8] = r * sc[0];
  }
}

/** Reduces a seed the way torch does: any integer in [-(2^63), 2^64) is taken mod 2^64; the engine uses the low 32 bits. */
function seedToU64(seed: number | bigint): bigint {
  if (typeof seed === "number" && !Number.isSafeInteger(seed)) {
    throw new EaselError("E_INPUT_INVALID", `seed must be an integer (got ${seed}); pass a bigint above 2^53`, { param: "seed" });
  }
  const s = BigInt(seed);
  if (s < -(1n << 63n) || s >= 1n << 64n) {
    throw new EaselError("E_INPUT_INVALID", `seed ${s} is outside [-(2^63), 2^64)`, { param: "seed" });
  }
  return BigInt.asUintN(64, s);
}

/** torch.Generator("cpu") equivalent: one mt19937 stream; consecutive randn calls continue the stream. */
export class TorchGenerator implements NoiseSource {
  private engine: Mt19937;
  private seed64: bigint;
  /** The scalar double path draws normals in pairs and keeps the second for the next call, as torch does. */
  private cachedNormal: number | undefined;
  private readonly sc = new Float64Array(2);

  constructor(seed: number | bigint = 67280421310721n) {
    this.seed64 = seedToU64(seed);
    this.engine = new Mt19937(Number(this.seed64 & 0xffffffffn));
  }

  manualSeed(seed: number | bigint): this {
    this.seed64 = seedToU64(seed);
    this.engine = new Mt19937(Number(this.seed64 & 0xffffffffn));
    this.cachedNormal = undefined;
    return this;
  }

  /** The seed as torch's `initial_seed()` reports it (mod 2^64). */
  initialSeed(): bigint {
    return this.seed64;
  }

  /** Next float uniform in [0, 1): 24 random bits. */
  private uniformFloat(): number {
    return (this.engine.nextU32() & 0xffffff) * 2 ** -24;
  }

  /** Next double uniform in [0, 1): 53 bits of (first u32 << 32 | second u32). */
  private uniformDouble(): number {
    const hi = this.engine.nextU32();
    const lo = this.engine.nextU32();
    return ((hi & 0x1fffff) * 2 ** 32 + lo) * 2 ** -53;
  }

  private normalDouble(): number {
    if (this.cachedNormal !== undefined) {
      const v = this.cachedNormal;
      this.cachedNormal = undefined;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  randn(shape: readonly number[]): Float32Array {
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new EaselError("E_INPUT_INVALID", `randn: bad shape [${shape.join(", ")}]`, { param: "shape" });
    }
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= n; i += 16) boxMuller16(out, i, this.sc);
    if (n % 16 !== 0) {
      // torch redraws the last 16 values from fresh uniforms and transforms them again.
      for (let i = n - 16; i < n; i++) out[i] = this.uniformFloat();
      boxMuller16(out, n - 16, this.sc);
    }
    return out;
  }
}

/**
 * A random seed for requests that ask for one (seed 0 / -1 / missing): 32 bits from the given source of uniform
 * [0, 1) numbers, never 0. Pass `crypto`-backed or test sources; the default is Math.random.
 */
export function randomSeed(random: () => number = Math.random): number {
  for (let k = 0; k < 16; k++) {
    const s = Math.floor(random() * 2 ** 32);
    if (s > 0 && s < 2 ** 32) return s;
  }
  throw new EaselError("E_INTERNAL", "randomSeed: the random source keeps returning values that give seed 0");
}

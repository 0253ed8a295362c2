/**
 * AutoencoderKL around the graphs: component directory -> cached ONNX models, the posterior of the encoder's
 * moments, and each family's latent scaling (what diffusers pipelines do before `vae.decode` / after `vae.encode`).
 */
import type { NoiseSource } from "../../tensor/noise.ts";
import { type PrepareComponentOptions, type PreparedModel, prepareComponent } from "./component.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "./vae.graph.ts";
import { type VaeConfig, vaeConfigFromJson } from "./vae-config.ts";

/** Bump when the VAE graphs' output changes, so cached graphs are rebuilt. */
export const VAE_GRAPH_VERSION = "vae.2";

/**
 * The VAE's sessions leave out onnxruntime's layout transformations (session.ts, graphOptimizationLevel). On the CPU
 * these run every convolution in the blocked NCHWc layout with reorder copies around the GroupNorms; at the decoder's
 * output resolution each copy is as large as the activations themselves (1 GiB for 256 channels at 1024x1024).
 * Measured on SDXL's VAE (random weights, 512x512 decode, 2 threads, same process): working memory above the loaded
 * session 0.65 GiB against 0.90 GiB with them (-28%); time per decode 13.3-13.5 s against 12.3-12.7 s (+7%).
 */
const VAE_SESSION = { graphOptimizationLevel: "extended" } as const;

function prepare(componentDir: string, opts: PrepareComponentOptions, part: "decoder" | "encoder"): PreparedModel<VaeConfig> {
  return prepareComponent(componentDir, opts, {
    component: `vae-${part}`,
    builderVersion: VAE_GRAPH_VERSION,
    parseConfig: vaeConfigFromJson,
    options: undefined,
    build: part === "decoder" ? buildVaeDecoderGraph : buildVaeEncoderGraph,
    session: VAE_SESSION,
  });
}

/** The decoder graph (`latent` -> `sample`) of a vae/ folder. */
export function prepareVaeDecoder(componentDir: string, opts: PrepareComponentOptions): PreparedModel<VaeConfig> {
  return prepare(componentDir, opts, "decoder");
}

/** The encoder graph (`image` -> `moments`) of a vae/ folder. */
export function prepareVaeEncoder(componentDir: string, opts: PrepareComponentOptions): PreparedModel<VaeConfig> {
  return prepare(componentDir, opts, "encoder");
}

export interface Posterior {
  /** [B, L, h, w] */
  mean: Float32Array;
  /** [B, L, h, w], clamped to [-30, 20] as DiagonalGaussianDistribution does. */
  logvar: Float32Array;
  /** exp(0.5 * logvar) */
  std: Float32Array;
  shape: number[];
}

/** DiagonalGaussianDistribution of `moments` [B, 2L, h, w] (channels: mean then logvar). */
export function posteriorFromMoments(moments: Float32Array, shape: readonly number[]): Posterior {
  const [b, c2, h, w] = shape;
  const L = c2 / 2;
  const plane = L * h * w;
  const mean = new Float32Array(b * plane);
  const logvar = new Float32Array(b * plane);
  const std = new Float32Array(b * plane);
  for (let n = 0; n < b; n++) {
    mean.set(moments.subarray(n * 2 * plane, n * 2 * plane + plane), n * plane);
    const lv = moments.subarray(n * 2 * plane + plane, (n + 1) * 2 * plane);
    for (let i = 0; i < plane; i++) {
      const v = Math.min(20, Math.max(-30, lv[i]));
      logvar[n * plane + i] = v;
      std[n * plane + i] = Math.exp(0.5 * v);
    }
  }
  return { mean, logvar, std, shape: [b, L, h, w] };
}

/** `posterior.sample(generator)`: mean + std * randn(shape) (one draw from `noise`). */
export function samplePosterior(p: Posterior, noise: NoiseSource): Float32Array {
  const eps = noise.randn(p.shape);
  const out = new Float32Array(p.mean.length);
  for (let i = 0; i < out.length; i++) out[i] = p.mean[i] + p.std[i] * eps[i];
  return out;
}

/** Per-channel (or global) affine map between model-space latents and the VAE's latent space. */
export interface LatentScaling {
  /** model latents [B, L, h, w] -> decoder input (SD: x / sf; SD3: x / sf + shift; Playground: x * std / sf + mean). */
  toVaeInput(latents: Float32Array, channels: number, plane: number): Float32Array;
  /** encoder mean/sample -> model latents (SD: x * sf; SD3: (x - shift) * sf; Playground: (x - mean) * sf / std). */
  fromVaeOutput(latents: Float32Array, channels: number, plane: number): Float32Array;
}

export function latentScaling(cfg: VaeConfig): LatentScaling {
  const sf = cfg.scalingFactor;
  const shift = cfg.shiftFactor ?? 0;
  const mean = (c: number) => cfg.latentsMean?.[c] ?? shift;
  const std = (c: number) => cfg.latentsStd?.[c] ?? 1;
  const map = (x: Float32Array, channels: number, plane: number, fn: (v: number, c: number) => number) => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = fn(x[i], Math.floor(i / plane) % channels);
    return out;
  };
  // Written as the pipelines write them (float32 tensors): the order of operations matters for the last ulp only.
  return {
    toVaeInput: (x, channels, plane) => map(x, channels, plane, (v, c) => (cfg.latentsStd ? (v * std(c)) / sf + mean(c) : v / sf + shift)),
    fromVaeOutput: (x, channels, plane) =>
      map(x, channels, plane, (v, c) => (cfg.latentsStd ? ((v - mean(c)) * sf) / std(c) : (v - shift) * sf)),
  };
}

/**
 * The denoising run every UNet family shares (diffusers' StableDiffusion(XL)Pipeline __call__ from the latents on):
 * seeded noise, optional img2img start from an encoded init image, the sampler loop with classifier-free
 * guidance (batch [uncond, cond]) and guidance rescale, previews, VAE decode and 8-bit conversion.
 * Families supply the conditioning and the extra network inputs.
 */
import { EaselError, invalidInput } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import type { HostTensor, ModelSession } from "../../runtime/session.ts";
import { addNoise, planSampling, runSampling } from "../../samplers/index.ts";
import { ReplayNoise } from "../../tensor/noise.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import type { ModelDefaults, PipelineHooks, PipelineOutput, PipelineParams } from "./family.ts";
import { applyGuidance, rescaleGuidance } from "./guidance.ts";
import { type LatentRgbFactors, latentPreview } from "./latent-preview.ts";
import { decodedToImages } from "./postprocess.ts";
import { type LatentScaling, posteriorFromMoments, samplePosterior } from "../components/vae.ts";

/** The network inputs besides the latent sample and timestep, for the batch the UNet will see. */
export interface Conditioning {
  /** encoder_hidden_states and any extra inputs (text_embeds, time_ids), batch = CFG ? 2n : n, order [uncond, cond]. */
  inputs: Record<string, HostTensor>;
  warnings: Warning[];
}

export interface UnetFamilyParts {
  unet: ModelSession;
  /** Name of the UNet graph's output. */
  unetOutput: string;
  vaeDecoder: ModelSession;
  /** Created on the first img2img request. */
  vaeEncoder: () => Promise<ModelSession>;
  scaling: LatentScaling;
  latentChannels: number;
  schedulerConfig: Record<string, unknown>;
  defaults: ModelDefaults;
  previewFactors: LatentRgbFactors;
  /** img2img strength when the request gives none (diffusers: 0.8 for SD, 0.3 for SDXL). */
  defaultStrength?: number;
  /** Builds the conditioning for n images, with or without the CFG half; `size` is the resolved output size. */
  condition: (params: PipelineParams, n: number, doCfg: boolean, size: { width: number; height: number }) => Promise<Conditioning>;
}

export interface ResolvedParams {
  n: number;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw invalidInput(name, `${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/** Fills model defaults and validates what every UNet family validates. */
export function resolveParams(p: PipelineParams, d: ModelDefaults): ResolvedParams {
  const width = p.width ?? p.initImage?.width ?? d.width;
  const height = p.height ?? p.initImage?.height ?? d.height;
  const steps = p.steps ?? d.steps;
  checkInt("n", p.n, 1, 16);
  checkInt("steps", steps, 1, 1000);
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    checkInt(name, v, d.sizeMultiple, 8192);
    if (v % d.sizeMultiple !== 0) throw invalidInput(name, `${name} must be a multiple of ${d.sizeMultiple}, got ${v}`);
  }
  const guidanceScale = p.guidanceScale ?? d.guidanceScale;
  if (!Number.isFinite(guidanceScale) || guidanceScale < 0) throw invalidInput("guidance_scale", `guidance_scale must be >= 0, got ${guidanceScale}`);
  const guidanceRescale = p.guidanceRescale ?? 0;
  if (!(guidanceRescale >= 0 && guidanceRescale <= 1)) {
    throw invalidInput("guidance_rescale", `guidance_rescale must be in [0, 1], got ${guidanceRescale}`);
  }
  if (p.initImage && (p.initImage.width !== width || p.initImage.height !== height)) {
    throw invalidInput("init_image", `init image is ${p.initImage.width}x${p.initImage.height}, the output is ${width}x${height}`);
  }
  if (p.strength !== undefined && !(p.strength > 0 && p.strength <= 1)) {
    throw invalidInput("strength", `strength must be in (0, 1], got ${p.strength}`);
  }
  return { n: p.n, width, height, steps, guidanceScale, guidanceRescale };
}

function abortError(): Error {
  const e = new Error("generation cancelled");
  e.name = "AbortError";
  return e;
}

/** Repeats a [1, ...] tensor n times along the batch axis. */
function repeatBatch(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(x.length * n);
  for (let i = 0; i < n; i++) out.set(x, i * x.length);
  return out;
}

/** Steps at which previews are taken: `count` frames spread evenly, the last one before the final step. */
export function previewSteps(total: number, count: number): Set<number> {
  const s = new Set<number>();
  for (let k = 1; k <= count; k++) s.add(Math.max(0, Math.floor((k * total) / (count + 1)) - 1));
  return s;
}

export async function runUnetDiffusion(parts: UnetFamilyParts, params: PipelineParams, hooks: PipelineHooks = {}): Promise<PipelineOutput> {
  const r = resolveParams(params, parts.defaults);
  const { n } = r;
  const C = parts.latentChannels;
  const h = r.height / 8;
  const w = r.width / 8;
  const shape = [n, C, h, w];
  const plane = h * w;
  const doCfg = r.guidanceScale > 1;
  const warnings: Warning[] = [];

  const plan = planSampling(parts.schedulerConfig, params.scheduler, r.steps, params.initImage ? { strength: params.strength ?? parts.defaultStrength ?? 0.8 } : {});
  const gen = new TorchGenerator(params.seed);
  const stepNoise = params.stepNoise ? new ReplayNoise(params.stepNoise, n * C * plane) : gen;

  const cond = await parts.condition(params, n, doCfg, { width: r.width, height: r.height });
  warnings.push(...cond.warnings);

  let x: Float32Array;
  if (params.initImage) {
    // diffusers img2img: posterior sample from the generator first, then the noise for add_noise.
    const enc = await parts.vaeEncoder();
    const out = await enc.run({ image: { data: params.initImage.data, shape: [1, 3, r.height, r.width] } });
    const moments = out.moments;
    const latent = samplePosterior(posteriorFromMoments(moments.data as Float32Array, moments.shape), gen);
    const x0 = repeatBatch(parts.scaling.fromVaeOutput(latent, C, plane), n);
    const noise = params.initLatents ?? gen.randn(shape);
    if (noise.length !== x0.length) throw invalidInput("init_latents", `init latents must have ${x0.length} values (shape [${shape}])`);
    x = addNoise(plan, x0, noise);
  } else {
    x = params.initLatents ?? gen.randn(shape);
    if (x.length !== n * C * plane) {
      throw invalidInput("init_latents", `init latents must have shape [${shape.join(", ")}] (${n * C * plane} values), got ${x.length}`);
    }
  }

  const wanted = previewSteps(plan.modelCalls, params.previews ?? 0);
  let previewIndex = 0;
  const batch = doCfg ? 2 * n : n;
  const model = async (xIn: Float32Array, t: number): Promise<Float32Array> => {
    if (hooks.isCancelled?.()) throw abortError();
    const sample = doCfg ? repeatBatch(xIn, 2) : xIn;
    const out = await parts.unet.run(
      { sample: { data: sample, shape: [batch, C, h, w] }, timestep: { data: new Float32Array(batch).fill(t), shape: [batch] }, ...cond.inputs },
      [parts.unetOutput],
    );
    const raw = out[parts.unetOutput].data as Float32Array;
    if (!doCfg) return raw;
    const { guided, cond: c } = applyGuidance(raw, n, r.guidanceScale);
    return rescaleGuidance(guided, c, n, r.guidanceRescale);
  };

  const latents = await runSampling(plan, model, x, {
    shape,
    noise: stepNoise,
    sdeNoise: params.stepNoise ? stepNoise : undefined,
    // `done` counts network calls so far (1-based).
    onStep: (done, total, current, denoised) => {
      hooks.onStep?.(done, total);
      if (wanted.has(done - 1) && hooks.onPreview) {
        // PNDM keeps no x0 estimate; its latents (sqrt(ᾱ)·x0 + noise, α-space) still preview recognisably.
        hooks.onPreview(previewIndex++, done, latentPreview(denoised ?? current, shape, parts.previewFactors));
      }
      if (hooks.isCancelled?.()) throw abortError();
    },
  });
  for (let i = 0; i < latents.length; i++) {
    if (!Number.isFinite(latents[i])) throw new EaselError("E_ENGINE_FAILED", "the sampler produced non-finite latents");
  }

  const vaeIn = parts.scaling.toVaeInput(latents, C, plane);
  const decoded = await parts.vaeDecoder.run({ latent: { data: vaeIn, shape } }, ["sample"]);
  const images = decodedToImages(decoded.sample.data as Float32Array, n, r.height, r.width);
  return { seed: params.seed, latents, latentShape: shape, images, warnings };
}

/**
 * The one denoising run every family shares (diffusers' pipelines' __call__ from the prompt embeddings on): limits
 * and defaults, the schedule (computed once), seeded noise, the img2img start from an encoded init image, the
 * sampler loop over the family's denoiser, previews, VAE decode and 8-bit conversion. A family supplies its
 * denoiser (network + classifier-free guidance) and its VAE; nothing here knows which network it runs.
 */
import { EaselError, invalidInput } from "../../core/errors.ts";
import { checkModelLimits, img2imgStartStep, type ModelLimits, requestBytes } from "../../core/limits.ts";
import type { Warning } from "../../core/types.ts";
import type { HostTensor, ModelSession } from "../../runtime/session.ts";
import { addNoise, planSampling, runSampling, type SamplingPlan } from "../../samplers/index.ts";
import { ReplayNoise } from "../../tensor/noise.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import { type LatentScaling, posteriorFromMoments, samplePosterior } from "../components/vae.ts";
import type { ModelDefaults, PipelineHooks, PipelineImage, PipelineOutput, PipelineParams } from "./family.ts";
import { applyGuidance, rescaleGuidance } from "./guidance.ts";
import { type LatentRgbFactors, latentPreview } from "./latent-preview.ts";
import { decodedToImages } from "./postprocess.ts";

/** The family's network on one batch of latents [n, C, h, w] at timestep t, guidance inside: the output the sampler reads. */
export type Denoiser = (x: Float32Array, t: number) => Promise<Float32Array>;

/** What a request's denoising needs besides the latents: sizes and the guidance settings, resolved. */
export interface DenoiseContext {
  n: number;
  width: number;
  height: number;
  /** [n, C, h, w] */
  shape: number[];
  doCfg: boolean;
  /**
   * Run classifier-free guidance as two batch-n calls (unconditional, then conditional) instead of one batch-2n
   * call, when the memory plan says the larger batch does not fit. The same numbers either way.
   */
  splitCfg?: boolean;
  guidanceScale: number;
  guidanceRescale: number;
  /**
   * An inpainting UNet's extra inputs (diffusers' 9-channel case): the mask [1, 1, h, w] at latent size and the
   * masked image's latents [1, C, h, w], concatenated after the latents of every batch row.
   */
  inpaint?: { mask: Float32Array; maskedImageLatents: Float32Array };
}

export interface PreparedDenoiser {
  denoise: Denoiser;
  warnings: Warning[];
  /** Called when the loop ends (also on failure), before the VAE decode: an on-demand network is released here. */
  done?: () => Promise<void>;
}

export interface DiffusionParts {
  defaults: ModelDefaults;
  limits: ModelLimits;
  latentChannels: number;
  scaling: LatentScaling;
  schedulerConfig: Record<string, unknown>;
  /**
   * The family's latent-to-RGB preview factors. A checkpoint whose latents have another channel count (a latent space
   * the factors do not describe, such as easel-shapes' 12 channels) previews by decoding with its own VAE instead.
   */
  previewFactors: LatentRgbFactors;
  /** The UNet takes 2C + 1 input channels (latents, mask, masked-image latents): an inpainting checkpoint. */
  inpaintingUnet?: boolean;
  /** Encodes the request's prompts and returns the denoiser for this request. */
  prepare: (params: PipelineParams, ctx: DenoiseContext) => Promise<PreparedDenoiser>;
  /** VAE encoder: RGB [1, 3, H, W] in [-1, 1] -> posterior moments [1, 2C, h, w] (img2img). */
  encodeImage: (image: HostTensor) => Promise<HostTensor>;
  /** VAE decoder: VAE-space latents [n, C, h, w] -> RGB [n, 3, H, W] in [-1, 1]. */
  decode: (latents: HostTensor) => Promise<Float32Array>;
}

/** The network inputs besides the latent sample and timestep, for the batch the UNet will see. */
export interface Conditioning {
  /** encoder_hidden_states and any extra inputs (text_embeds, time_ids), batch = CFG ? 2n : n, order [uncond, cond]. */
  inputs: Record<string, HostTensor>;
  warnings: Warning[];
}

/** Concatenates [1, ...] rows: negatives n times, then positives n times (the CFG batch order). */
export function cfgBatch(neg: Float32Array | undefined, pos: Float32Array, n: number): Float32Array {
  const rows = neg ? [...Array(n).fill(neg), ...Array(n).fill(pos)] : Array(n).fill(pos);
  const out = new Float32Array(rows.length * pos.length);
  for (const [i, r] of rows.entries()) out.set(r as Float32Array, i * pos.length);
  return out;
}

/**
 * Which rows of the CFG-batched conditioning a network call gets: all of them (one batch-2n call, or no guidance),
 * or one half ([0, n) unconditional, [n, 2n) conditional) when guidance runs as two calls.
 */
export type CfgRows = "all" | "uncond" | "cond";

/** Classifier-free guidance over a network that takes the CFG batch [uncond, cond]: the latents go in twice. */
export function guidedDenoiser(
  ctx: DenoiseContext,
  net: (x: Float32Array, t: number, batch: number, rows: CfgRows) => Promise<Float32Array>,
): Denoiser {
  return async (x, t) => {
    if (!ctx.doCfg) return net(x, t, ctx.n, "all");
    let raw: Float32Array;
    if (ctx.splitCfg) {
      const uncond = await net(x, t, ctx.n, "uncond");
      const cond = await net(x, t, ctx.n, "cond");
      raw = new Float32Array(uncond.length * 2);
      raw.set(uncond);
      raw.set(cond, uncond.length);
    } else raw = await net(repeatBatch(x, 2), t, 2 * ctx.n, "all");
    const { guided, cond } = applyGuidance(raw, ctx.n, ctx.guidanceScale);
    return rescaleGuidance(guided, cond, ctx.n, ctx.guidanceRescale);
  };
}

/**
 * The conditioning inputs a call needs (see CfgRows): all rows, or one half of each [2n, ...] CFG-batched tensor.
 * Each half is cut once per request, on first use, not at every step.
 */
export function cfgInputs(inputs: Record<string, HostTensor>): (rows: CfgRows) => Record<string, HostTensor> {
  const halves = new Map<CfgRows, Record<string, HostTensor>>([["all", inputs]]);
  const half = (t: HostTensor, rows: CfgRows): HostTensor => {
    const n = t.shape[0] / 2;
    const per = t.data.length / t.shape[0];
    const start = rows === "uncond" ? 0 : n * per;
    return { data: t.data.slice(start, start + n * per) as HostTensor["data"], shape: [n, ...t.shape.slice(1)] };
  };
  return (rows) => {
    let r = halves.get(rows);
    if (!r) {
      r = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, half(v, rows)]));
      halves.set(rows, r);
    }
    return r;
  };
}

/** The UNet denoiser: `sample`, `timestep` and the conditioning's inputs in, `output` out, guidance applied. */
export function unetDenoiser(unet: ModelSession, output: string, cond: Conditioning, ctx: DenoiseContext): Denoiser {
  const [, C, h, w] = ctx.shape;
  const inputsFor = cfgInputs(cond.inputs);
  return guidedDenoiser(ctx, async (x, t, batch, rows) => {
    const sample = ctx.inpaint
      ? { data: inpaintInput(x, batch, C, h * w, ctx.inpaint), shape: [batch, 2 * C + 1, h, w] }
      : { data: x, shape: [batch, C, h, w] };
    const feeds = { sample, timestep: { data: new Float32Array(batch).fill(t), shape: [batch] }, ...inputsFor(rows) };
    return (await unet.run(feeds, [output]))[output].data as Float32Array;
  });
}

/**
 * The latent channels a UNet works in and whether it is an inpainting UNet: in_channels 2C + 1 (latents, mask,
 * masked-image latents) for out_channels C, as diffusers' inpaint pipelines tell (`num_channels_unet == 9`).
 */
export function unetChannels(cfg: { inChannels: number; outChannels: number }): { latentChannels: number; inpaintingUnet: boolean } {
  return { latentChannels: cfg.outChannels, inpaintingUnet: cfg.inChannels === 2 * cfg.outChannels + 1 };
}

/** diffusers' inpainting UNet input: per batch row, cat([latents (C), mask (1), masked-image latents (C)], dim=1). */
export function inpaintInput(x: Float32Array, batch: number, C: number, plane: number, inpaint: NonNullable<DenoiseContext["inpaint"]>): Float32Array {
  const per = (2 * C + 1) * plane;
  const out = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++) {
    out.set(x.subarray(b * C * plane, (b + 1) * C * plane), b * per);
    out.set(inpaint.mask, b * per + C * plane);
    out.set(inpaint.maskedImageLatents, b * per + (C + 1) * plane);
  }
  return out;
}

/** torch's F.interpolate(mode="nearest") from [H, W] down to [H / f, W / f]: each cell takes pixel (f·y, f·x). */
export function nearestDownsample(mask: Float32Array, width: number, height: number, factor: number): Float32Array {
  const w = width / factor;
  const h = height / factor;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = mask[y * factor * width + x * factor];
  return out;
}

export interface ResolvedParams {
  n: number;
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  warnings: Warning[];
}

/** Fills model defaults and checks the request against the model's limits (the same check the job service makes). */
export function resolveParams(p: PipelineParams, d: ModelDefaults, limits: ModelLimits): ResolvedParams {
  const width = p.width ?? p.initImage?.width ?? d.width;
  const height = p.height ?? p.initImage?.height ?? d.height;
  const warnings = checkModelLimits({ ...p, width, height }, d, limits, p.initImage !== undefined);
  if (p.initImage && (p.initImage.width !== width || p.initImage.height !== height)) {
    throw invalidInput("init_image", `init image is ${p.initImage.width}x${p.initImage.height}, the output is ${width}x${height}`);
  }
  return {
    n: p.n,
    width,
    height,
    steps: p.steps ?? d.steps,
    guidanceScale: p.guidanceScale ?? d.guidanceScale,
    guidanceRescale: limits.guidanceRescale ? (p.guidanceRescale ?? 0) : 0,
    warnings,
  };
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

export async function runDiffusion(parts: DiffusionParts, params: PipelineParams, hooks: PipelineHooks = {}): Promise<PipelineOutput> {
  // Inpainting: a mask over the init image, or an inpainting UNet (which repaints the whole image without one).
  const inpainting = params.mask !== undefined || parts.inpaintingUnet === true;
  // StableDiffusionInpaintPipeline's default strength is 1 (all steps, starting from pure noise).
  const r = resolveParams(inpainting && params.strength === undefined ? { ...params, strength: 1 } : params, parts.defaults, parts.limits);
  const { n } = r;
  const C = parts.latentChannels;
  const h = r.height / 8;
  const w = r.width / 8;
  const shape = [n, C, h, w];
  const plane = h * w;
  const warnings: Warning[] = [...r.warnings];

  if (params.mask && !params.initImage) throw invalidInput("mask", "a mask needs the image it applies to (init_image)");
  if (parts.inpaintingUnet && !params.initImage) {
    throw invalidInput(
      "image",
      "this is an inpainting model (its UNet reads a mask and the masked image): give it an image to edit and a mask (OpenAI: POST /v1/images/edits)",
    );
  }
  if (params.mask && (params.mask.width !== r.width || params.mask.height !== r.height)) {
    throw invalidInput("mask", `the mask is ${params.mask.width}x${params.mask.height}, the output is ${r.width}x${r.height}`);
  }

  let startStep: number | undefined;
  let reproduce = false;
  let strengthMax = false;
  if (params.initImage && parts.limits.img2img) {
    const { rule, defaultStrength } = parts.limits.img2img;
    const strength = params.strength ?? (inpainting ? 1 : defaultStrength);
    // strength 0: no denoising step; the result is the init image through the VAE.
    reproduce = strength === 0;
    // diffusers' inpaint pipelines start from noise · init_noise_sigma at strength 1 (`is_strength_max`).
    strengthMax = inpainting && strength === 1;
    startStep = reproduce ? 0 : img2imgStartStep(rule, r.steps, strength);
  }
  const plan = planSampling(parts.schedulerConfig, params.scheduler, r.steps, { startStep, latentSize: { height: h, width: w } });
  const gen = new TorchGenerator(params.seed);
  const stepNoise = params.stepNoise ? new ReplayNoise(params.stepNoise, n * C * plane) : gen;

  const doCfg = r.guidanceScale > 1;
  const mem = parts.limits.memory;
  const ctx: DenoiseContext = {
    n,
    width: r.width,
    height: r.height,
    shape,
    doCfg,
    // Guidance as two calls when the batch-2n call would not fit in memory (the limits check made sure batch n does).
    splitCfg: doCfg && mem !== undefined && requestBytes(mem, r.width, r.height, 2 * n) > mem.machineBytes,
    guidanceScale: r.guidanceScale,
    guidanceRescale: r.guidanceRescale,
  };
  if (ctx.splitCfg) {
    warnings.push({ code: "W_MEMORY_PLAN", message: "classifier-free guidance ran as two calls per step to fit this machine's memory (same result, slower)" });
  }

  /** Model-space latents [n, C, h, w] -> n images through the VAE, one image at a time (its activations at 1024² are several GiB each). */
  const decodeAll = async (latents: Float32Array): Promise<PipelineImage[]> => {
    const vaeIn = parts.scaling.toVaeInput(latents, C, plane);
    const per = C * plane;
    const images = [];
    for (let i = 0; i < n; i++) {
      const decoded = await parts.decode({ data: vaeIn.slice(i * per, (i + 1) * per), shape: [1, C, h, w] });
      images.push(...decodedToImages(decoded, 1, r.height, r.width));
    }
    return images;
  };
  const finish = async (latents: Float32Array): Promise<PipelineOutput> => {
    for (let i = 0; i < latents.length; i++) {
      if (!Number.isFinite(latents[i])) throw new EaselError("E_ENGINE_FAILED", "the sampler produced non-finite latents");
    }
    return { seed: params.seed, latents, latentShape: shape, images: await decodeAll(latents), warnings };
  };

  // The start latents, each draw from the generator in diffusers' order (prepare_latents, then prepare_mask_latents).
  let x: Float32Array;
  let afterStep: ((i: number, x: Float32Array) => void) | undefined;
  if (params.initImage) {
    const image = params.initImage.data;
    /** VAE encode with a posterior sample from the generator, in model space: diffusers' `_encode_vae_image`. */
    const encode = async (rgb: Float32Array): Promise<Float32Array> => {
      const moments = await parts.encodeImage({ data: rgb, shape: [1, 3, r.height, r.width] });
      return parts.scaling.fromVaeOutput(samplePosterior(posteriorFromMoments(moments.data as Float32Array, moments.shape), gen), C, plane);
    };
    // An inpainting UNet starting from pure noise never reads the init image's latents, so diffusers skips them.
    const x0 = parts.inpaintingUnet && strengthMax ? undefined : repeatBatch(await encode(image), n);
    if (reproduce && x0) return await finish(x0);
    const noise = params.initLatents ?? gen.randn(shape);
    if (noise.length !== n * C * plane) throw invalidInput("init_latents", `init latents must have ${n * C * plane} values (shape [${shape}])`);
    if (strengthMax) {
      const sigma = Math.fround(plan.initNoiseSigma);
      x = noise.map((v) => v * sigma);
    } else x = addNoise(plan, x0 as Float32Array, noise);
    if (inpainting) {
      const pixels = r.width * r.height;
      const maskPx = params.mask?.data ?? new Float32Array(pixels).fill(1);
      const mask = nearestDownsample(maskPx, r.width, r.height, 8);
      if (parts.inpaintingUnet) {
        // masked_image = init_image * (mask < 0.5), encoded; the UNet reads it beside the mask at every step.
        const masked = new Float32Array(image.length);
        for (let c = 0; c < 3; c++) for (let i = 0; i < pixels; i++) masked[c * pixels + i] = maskPx[i] < 0.5 ? image[c * pixels + i] : 0;
        ctx.inpaint = { mask, maskedImageLatents: await encode(masked) };
      } else {
        // diffusers encodes the masked image for a 4-channel UNet too, which never reads it: only its posterior draw
        // [1, C, h, w] is taken, so that later draws (ancestral samplers) match.
        gen.randn([1, C, h, w]);
        afterStep = keepUnmasked(plan, x0 as Float32Array, noise, mask, n * C);
      }
    }
  } else {
    x = params.initLatents ?? gen.randn(shape);
    if (x.length !== n * C * plane) {
      throw invalidInput("init_latents", `init latents must have shape [${shape.join(", ")}] (${n * C * plane} values), got ${x.length}`);
    }
  }

  const prepared = await parts.prepare(params, ctx);
  warnings.push(...prepared.warnings);
  let latents: Float32Array;
  try {
    const wanted = previewSteps(plan.modelCalls, params.previews ?? 0);
    let previewIndex = 0;
    // Previews through the VAE (the factors do not fit this latent space) are decoded before the next network call:
    // the sampler's step callback cannot wait.
    const decodedPreviews = parts.previewFactors.weights.length !== C;
    let pending: { index: number; done: number; x0: Float32Array } | undefined;
    const flushPreview = async () => {
      const p = pending;
      pending = undefined;
      if (p && hooks.onPreview) hooks.onPreview(p.index, p.done, await decodeAll(p.x0));
    };
    const model = async (xIn: Float32Array, t: number): Promise<Float32Array> => {
      await flushPreview();
      if (hooks.isCancelled?.()) throw abortError();
      return prepared.denoise(xIn, t);
    };
    latents = await runSampling(plan, model, x, {
      shape,
      noise: stepNoise,
      sdeNoise: params.stepNoise ? stepNoise : undefined,
      afterStep,
      // `done` counts network calls so far (1-based).
      onStep: (done, total, current, denoised) => {
        hooks.onStep?.(done, total);
        if (wanted.has(done - 1) && hooks.onPreview) {
          // PNDM keeps no x0 estimate; its latents (sqrt(ᾱ)·x0 + noise, α-space) still preview recognisably.
          const x0 = denoised ?? current;
          if (decodedPreviews) pending = { index: previewIndex++, done, x0: x0.slice() };
          else hooks.onPreview(previewIndex++, done, latentPreview(x0, shape, parts.previewFactors));
        }
        if (hooks.isCancelled?.()) throw abortError();
      },
    });
    await flushPreview();
  } finally {
    await prepared.done?.();
  }
  return finish(latents);
}

/**
 * diffusers' 4-channel inpainting rule, after each scheduler step i: `latents = (1 - mask) * init_latents_proper +
 * mask * latents`, where init_latents_proper is the init image's latents noised to the next timestep
 * (`add_noise(image_latents, noise, timesteps[i + 1])`, the same noise the run started from), or unnoised after the
 * last step. `mask` is [h, w] at latent size, 1 = repaint; `rows` = n · C planes.
 */
function keepUnmasked(plan: SamplingPlan, x0: Float32Array, noise: Float32Array, mask: Float32Array, rows: number): (i: number, x: Float32Array) => void {
  const last = plan.timesteps.length - 1;
  const plane = mask.length;
  return (i, x) => {
    const proper = i < last ? addNoise(plan, x0, noise, i + 1) : x0;
    for (let r = 0; r < rows; r++) {
      for (let p = 0; p < plane; p++) {
        const j = r * plane + p;
        x[j] = (1 - mask[p]) * proper[j] + mask[p] * x[j];
      }
    }
  };
}

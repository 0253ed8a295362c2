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
import { addNoise, planSampling, runSampling } from "../../samplers/index.ts";
import { ReplayNoise } from "../../tensor/noise.ts";
import { TorchGenerator } from "../../tensor/rng.ts";
import { type LatentScaling, posteriorFromMoments, samplePosterior } from "../components/vae.ts";
import type { ModelDefaults, PipelineHooks, PipelineOutput, PipelineParams } from "./family.ts";
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
  previewFactors: LatentRgbFactors;
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
    const feeds = { sample: { data: x, shape: [batch, C, h, w] }, timestep: { data: new Float32Array(batch).fill(t), shape: [batch] }, ...inputsFor(rows) };
    return (await unet.run(feeds, [output]))[output].data as Float32Array;
  });
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
  const r = resolveParams(params, parts.defaults, parts.limits);
  const { n } = r;
  const C = parts.latentChannels;
  const h = r.height / 8;
  const w = r.width / 8;
  const shape = [n, C, h, w];
  const plane = h * w;
  const warnings: Warning[] = [...r.warnings];

  let startStep: number | undefined;
  let reproduce = false;
  if (params.initImage && parts.limits.img2img) {
    const { rule, defaultStrength } = parts.limits.img2img;
    const strength = params.strength ?? defaultStrength;
    // strength 0: no denoising step; the result is the init image through the VAE.
    reproduce = strength === 0;
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
  // strength 0 runs no denoising step: the prompts are not encoded.
  const prepared: PreparedDenoiser = reproduce ? { denoise: async (x) => x, warnings: [] } : await parts.prepare(params, ctx);
  warnings.push(...prepared.warnings);

  const finish = async (latents: Float32Array): Promise<PipelineOutput> => {
    for (let i = 0; i < latents.length; i++) {
      if (!Number.isFinite(latents[i])) throw new EaselError("E_ENGINE_FAILED", "the sampler produced non-finite latents");
    }
    // One image at a time: the VAE decoder's activations at 1024² are several GiB per image.
    const vaeIn = parts.scaling.toVaeInput(latents, C, plane);
    const per = C * plane;
    const images = [];
    for (let i = 0; i < n; i++) {
      const decoded = await parts.decode({ data: vaeIn.slice(i * per, (i + 1) * per), shape: [1, C, h, w] });
      images.push(...decodedToImages(decoded, 1, r.height, r.width));
    }
    return { seed: params.seed, latents, latentShape: shape, images, warnings };
  };

  let latents: Float32Array;
  try {
    let x: Float32Array;
    if (params.initImage) {
      // diffusers img2img: posterior sample from the generator first, then the noise for add_noise.
      const moments = await parts.encodeImage({ data: params.initImage.data, shape: [1, 3, r.height, r.width] });
      const latent = samplePosterior(posteriorFromMoments(moments.data as Float32Array, moments.shape), gen);
      const x0 = repeatBatch(parts.scaling.fromVaeOutput(latent, C, plane), n);
      if (reproduce) return await finish(x0);
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
    const model = async (xIn: Float32Array, t: number): Promise<Float32Array> => {
      if (hooks.isCancelled?.()) throw abortError();
      return prepared.denoise(xIn, t);
    };
    latents = await runSampling(plan, model, x, {
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
  } finally {
    await prepared.done?.();
  }
  return finish(latents);
}

/**
 * AUTOMATIC1111 txt2img / img2img body → GenerationRequest, and the `info` JSON A1111 answers with
 * (modules/processing.py, Processed.js). Omitted fields take the model's defaults (steps, CFG scale, size, its own
 * scheduler), not A1111's fixed ones (50 steps, 512x512, Euler), so each model runs as its registry says.
 */
import { EaselError, invalidInput } from "../../core/errors.ts";
import { formatInfotext } from "../../core/image-format.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest, GenerationResult, ImageFormat, ModelInfo, Warning } from "../../core/types.ts";
import { a1111NamesOf, a1111Schedule, resolveA1111Sampler } from "../_shared/a1111-names.ts";
import { decodeBase64InitImage } from "../_shared/init-image.ts";
import { resolveModel } from "../_shared/models.ts";
import type { CommonBody, Img2ImgBody } from "./schema.ts";

/** What a key has set with POST /sdapi/v1/options (kept per key, see routes.ts). */
export interface KeyOptions {
  /** Model id chosen by sd_model_checkpoint. */
  model?: string;
  /** CLIP_stop_at_last_layers, A1111's units (1 = no skip). */
  clipStop?: number;
  samplesFormat?: ImageFormat;
}

/** A1111's img2img default denoising strength. */
export const IMG2IMG_DEFAULT_STRENGTH = 0.75;

/** A1111's samples_format spellings. */
export function parseSamplesFormat(v: unknown, param: string): ImageFormat {
  const s = typeof v === "string" ? v.toLowerCase() : "";
  if (s === "png" || s === "webp") return s;
  if (s === "jpg" || s === "jpeg") return "jpeg";
  throw invalidInput(param, `${param} must be "png", "jpg" or "webp", got ${JSON.stringify(v)}`);
}

export function parseClipStop(v: unknown, param: string): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 12) {
    throw invalidInput(param, `${param} must be an integer from 1 to 12, got ${JSON.stringify(v)}`, { min: 1, max: 12 });
  }
  return n;
}

/** A model by A1111 checkpoint title: "name", "name.safetensors" or "name.safetensors [hash]". */
export function findCheckpoint(images: ImageService, title: string, param: string): ModelInfo {
  const bare = title.replace(/\s*\[[0-9a-fA-F]+\]\s*$/, "");
  const stem = bare.replace(/\.(safetensors|ckpt|pt|bin)$/i, "");
  return resolveModel(images, [...new Set([title, bare, stem])], { param, shown: title });
}

/** The model a request runs when it names none: the configured default, else the first installed. */
export function defaultModel(images: ImageService, configured: string | undefined): ModelInfo {
  const m = (configured ? images.findModel(configured) : undefined) ?? images.listModels()[0];
  if (!m) {
    throw new EaselError(
      "E_MODEL_NOT_FOUND",
      "No model is installed on this server. Put a diffusers model folder in the models directory (or map one in " +
        "the config's models.entries), then restart the server.",
      { param: "sd_model_checkpoint" },
    );
  }
  return m;
}

export interface Translated {
  req: GenerationRequest;
  model: ModelInfo;
  /** A1111's names of what runs, as `info` reports them. */
  samplerName: string;
  scheduleLabel: string;
  steps: number;
  cfgScale: number;
  batchSize: number;
  /** A1111 units (1 = no skip). */
  clipStop: number;
  denoisingStrength: number | null;
  sendImages: boolean;
  saveImages: boolean;
}

const ignored = (param: string, message: string): Warning => ({ code: "W_PARAM_IGNORED", param, message });

/** Values A1111 treats as "no change"; anything else is named in a warning. */
const SAMPLER_KNOB_DEFAULTS: Record<string, number | null> = { eta: null, s_churn: 0, s_tmin: 0, s_tmax: null, s_noise: 1, s_min_uncond: 0 };
/** override_settings keys that are read; any other is named in a warning. */
const KNOWN_OVERRIDES = new Set(["sd_model_checkpoint", "CLIP_stop_at_last_layers", "sd_vae", "samples_format"]);

function featureWarnings(body: CommonBody): Warning[] {
  const w: Warning[] = [];
  const b = body as CommonBody & { enable_hr?: boolean | null };
  if (b.enable_hr) w.push(ignored("enable_hr", "hires. fix is not implemented: the image is generated at width x height, without the upscale pass"));
  if (body.restore_faces) w.push(ignored("restore_faces", "face restoration is not implemented"));
  if (body.tiling) w.push(ignored("tiling", "tiling is not implemented"));
  if ((body.subseed_strength ?? 0) > 0) w.push(ignored("subseed_strength", "variation seeds are not implemented: the seed alone decides the noise"));
  if (body.refiner_checkpoint) w.push(ignored("refiner_checkpoint", "refiner checkpoints are not implemented"));
  if (body.alwayson_scripts && Object.keys(body.alwayson_scripts).length > 0) {
    w.push(ignored("alwayson_scripts", `scripts do not run on this server: ${Object.keys(body.alwayson_scripts).join(", ")}`));
  }
  for (const [k, def] of Object.entries(SAMPLER_KNOB_DEFAULTS)) {
    const v = body[k as keyof CommonBody] as number | null | undefined;
    if (v != null && v !== def) w.push(ignored(k, `${k} is not adjustable on this server's samplers`));
  }
  return w;
}

export async function translate(
  body: CommonBody,
  mode: "txt2img" | "img2img",
  opts: KeyOptions,
  images: ImageService,
  configuredDefault: string | undefined,
): Promise<Translated> {
  if (body.script_name) {
    throw new EaselError("E_INPUT_INVALID", `Script '${body.script_name}' not found`, {
      param: "script_name",
      details: { reason: "script_not_found" },
    });
  }
  const overrides = body.override_settings ?? {};
  const warnings = featureWarnings(body);
  const checkpoint = overrides.sd_model_checkpoint;
  const model =
    typeof checkpoint === "string" && checkpoint !== ""
      ? findCheckpoint(images, checkpoint, "override_settings.sd_model_checkpoint")
      : opts.model
        ? findCheckpoint(images, opts.model, "sd_model_checkpoint")
        : defaultModel(images, configuredDefault);

  const vae = overrides.sd_vae;
  if (typeof vae === "string" && !["", "automatic", "none"].includes(vae.toLowerCase())) {
    warnings.push(ignored("override_settings.sd_vae", `separate VAEs are not supported: the checkpoint's own VAE decoded the image, not "${vae}"`));
  }
  const unknown = Object.keys(overrides).filter((k) => !KNOWN_OVERRIDES.has(k));
  if (unknown.length > 0) warnings.push(ignored("override_settings", `settings not kept on this server: ${unknown.join(", ")}`));

  const clipRaw = overrides.CLIP_stop_at_last_layers ?? body.clip_skip ?? opts.clipStop;
  const clipStop = clipRaw == null ? 1 : parseClipStop(clipRaw, overrides.CLIP_stop_at_last_layers != null ? "override_settings.CLIP_stop_at_last_layers" : "clip_skip");
  let clipSkip: number | undefined = clipStop > 1 ? clipStop - 1 : undefined;
  if (clipSkip !== undefined && model.limits.maxClipSkip === 0) {
    warnings.push(ignored("CLIP_stop_at_last_layers", `the model "${model.id}" takes no CLIP skip; all layers were used`));
    clipSkip = undefined;
  }
  const format = overrides.samples_format != null ? parseSamplesFormat(overrides.samples_format, "override_settings.samples_format") : (opts.samplesFormat ?? "png");

  const samplerName = body.sampler_name || body.sampler_index || undefined;
  let sampler: { id?: string; samplerName: string; scheduleLabel: string };
  if (samplerName) {
    const r = resolveA1111Sampler(samplerName, body.scheduler ?? undefined, model.kind);
    if (r.warning) warnings.push(r.warning);
    sampler = r;
  } else {
    if (body.scheduler && a1111Schedule(body.scheduler).name !== "automatic") {
      warnings.push(ignored("scheduler", "a schedule type without sampler_name does not change the model's own scheduler"));
    }
    sampler = { id: undefined, ...a1111NamesOf(model.defaults.scheduler) };
  }

  let initImage: Uint8Array | undefined;
  let strength: number | undefined;
  if (mode === "img2img") {
    const b = body as Img2ImgBody;
    if (b.mask) {
      throw new EaselError("E_NOT_SUPPORTED", "Inpainting masks are not supported through /sdapi/v1/img2img; send the request without mask.", {
        param: "mask",
      });
    }
    if (b.init_images.length > 1) warnings.push(ignored("init_images", `only the first of ${b.init_images.length} init images is used`));
    if ((b.resize_mode ?? 0) !== 0) warnings.push(ignored("resize_mode", "the init image is always resized to width x height (resize_mode 0)"));
    initImage = await decodeBase64InitImage(b.init_images[0], "init_images");
    strength = body.denoising_strength ?? IMG2IMG_DEFAULT_STRENGTH;
  }

  const batchSize = body.batch_size ?? 1;
  const steps = body.steps ?? model.defaults.steps;
  const cfgScale = body.cfg_scale ?? model.defaults.guidanceScale;
  const seed = body.seed == null || body.seed < 0 ? undefined : body.seed;
  const req: GenerationRequest = {
    model: model.id,
    prompt: body.prompt ?? "",
    negativePrompt: body.negative_prompt || undefined,
    n: batchSize * (body.n_iter ?? 1),
    width: body.width ?? model.defaults.width,
    height: body.height ?? model.defaults.height,
    steps,
    guidanceScale: cfgScale,
    ...(sampler.id ? { scheduler: sampler.id } : {}),
    seed,
    ...(initImage ? { initImage, strength } : {}),
    output: { format },
    // Preview frames feed GET /sdapi/v1/progress's current_image (local models stream them; upstreams do not).
    partialImages: model.backend === "local" ? 3 : 0,
    clipSkip,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
  return {
    req,
    model,
    samplerName: sampler.samplerName,
    scheduleLabel: sampler.scheduleLabel,
    steps,
    cfgScale,
    batchSize,
    clipStop,
    denoisingStrength: strength ?? null,
    sendImages: body.send_images ?? true,
    saveImages: body.save_images ?? false,
  };
}

/** YYYYMMDDhhmmss, as A1111's job_timestamp. */
function jobTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

/** The infotext of image `i` in A1111's names. */
export function infotextOf(t: Translated, seed: number): string {
  return formatInfotext({
    prompt: t.req.prompt,
    negativePrompt: t.req.negativePrompt,
    steps: t.steps,
    sampler: t.samplerName,
    scheduleType: t.scheduleLabel,
    cfgScale: t.cfgScale,
    seed,
    width: t.req.width,
    height: t.req.height,
    model: t.model.id,
    denoisingStrength: t.denoisingStrength ?? undefined,
    clipSkip: t.clipStop,
  });
}

/** A1111's `info` object (serialised to a JSON string in the response), from what ran. */
export function infoObject(t: Translated, result: GenerationResult, body: CommonBody) {
  const n = result.images.length;
  const seeds = result.images.map((img) => img.seed);
  const subseed = body.subseed != null && body.subseed >= 0 ? body.subseed : -1;
  return {
    prompt: t.req.prompt,
    all_prompts: Array(n).fill(t.req.prompt),
    negative_prompt: t.req.negativePrompt ?? "",
    all_negative_prompts: Array(n).fill(t.req.negativePrompt ?? ""),
    seed: result.seed,
    all_seeds: seeds,
    subseed,
    all_subseeds: Array(n).fill(subseed),
    subseed_strength: body.subseed_strength ?? 0,
    width: t.req.width,
    height: t.req.height,
    sampler_name: t.samplerName,
    cfg_scale: t.cfgScale,
    steps: t.steps,
    batch_size: t.batchSize,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: t.model.id,
    sd_model_hash: null,
    sd_vae_name: null,
    sd_vae_hash: null,
    seed_resize_from_w: -1,
    seed_resize_from_h: -1,
    denoising_strength: t.denoisingStrength,
    extra_generation_params: { "Schedule type": t.scheduleLabel },
    index_of_first_image: 0,
    infotexts: seeds.map((s) => infotextOf(t, s)),
    styles: body.styles ?? [],
    job_timestamp: jobTimestamp(result.created > 1e11 ? result.created : result.created * 1000),
    clip_skip: t.clipStop,
    is_using_inpainting_conditioning: false,
    version: "easel",
    /** Easel: what was accepted but not acted on, and substitutions (also in x-easel-warnings). */
    warnings: result.warnings,
  };
}

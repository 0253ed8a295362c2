/**
 * Capability-aware planning, the same for every provider type: a request is checked against what the upstream
 * model accepts (Capabilities) and either planned as wire calls, with a W_PARAM_ADAPTED warning for each parameter
 * that reaches the upstream in another form (n fanned out over several calls, a knob the upstream chooses itself,
 * a scheduler it has no name for, an answer to be transcoded), or refused with a 400 that names the field the
 * upstream cannot honour (a size it does not render, a seed or negative prompt it cannot take, img2img).
 * Nothing is dropped silently. Field names are Easel's snake_case spellings (the OpenAI dialect's).
 */
import { EaselError, invalidInput } from "../../core/errors.ts";
import type { ModelLimits } from "../../core/limits.ts";
import type { GenerationRequest, ImageFormat, Warning } from "../../core/types.ts";
import type { Capabilities, PlannedCall, Range, UpstreamPlan } from "./upstream.ts";

export const W_PARAM_ADAPTED = "W_PARAM_ADAPTED";

/** Seeds the gateway picks stay below 2^32, the range every local family and most APIs take. */
const SEED_PICK_MAX = 2 ** 32 - 1;

export interface PlanContext {
  provider: string;
  upstreamModel: string;
  randomInt: (min: number, max: number) => number;
}

function where(ctx: PlanContext): string {
  return `provider "${ctx.provider}" (model "${ctx.upstreamModel}")`;
}

function adapted(param: string, message: string): Warning {
  return { code: W_PARAM_ADAPTED, param, message };
}

function inRange(param: string, v: number, r: Range, ctx: PlanContext): void {
  if (!(v >= r.min && v <= r.max)) {
    throw invalidInput(param, `${param} must be from ${r.min} to ${r.max} for ${where(ctx)}, got ${v}`, { min: r.min, max: r.max });
  }
}

function notSupported(param: string, what: string, ctx: PlanContext): EaselError {
  return new EaselError("E_NOT_SUPPORTED", `${where(ctx)} ${what}; leave ${param} out or use another model`, { param });
}

function checkSize(req: GenerationRequest, caps: Capabilities, ctx: PlanContext): void {
  const size = `${req.width}x${req.height}`;
  if ("list" in caps.sizes) {
    if (!caps.sizes.list.includes(size)) {
      throw invalidInput("size", `${where(ctx)} renders the sizes ${caps.sizes.list.join(", ")}; got ${size}`, { allowed: caps.sizes.list });
    }
    return;
  }
  const { multiple, min, max } = caps.sizes;
  for (const v of [req.width, req.height]) {
    if (v < min || v > max || v % multiple !== 0) {
      throw invalidInput("size", `${where(ctx)} renders sides that are multiples of ${multiple} from ${min} to ${max}; got ${size}`, { min, max, multipleOf: multiple });
    }
  }
}

/** Easel's own fields, which only an Easel upstream (openai type with easelExtensions) takes. */
const EASEL_FIELDS: [keyof GenerationRequest, string][] = [
  ["clipSkip", "clip_skip"],
  ["maxSequenceLength", "max_sequence_length"],
  ["useT5", "use_t5"],
  ["guidanceRescale", "guidance_rescale"],
  ["prompt2", "prompt_2"],
  ["negativePrompt2", "negative_prompt_2"],
  ["prompt3", "prompt_3"],
  ["negativePrompt3", "negative_prompt_3"],
];

/** The scheduler name to send, or a warning that the upstream's own scheduler runs. */
function planScheduler(req: GenerationRequest, caps: Capabilities, ctx: PlanContext, warnings: Warning[]): string | undefined {
  if (req.scheduler === undefined) return undefined;
  if (caps.schedulers === "canonical") return req.scheduler;
  const name = caps.schedulers === false ? undefined : caps.schedulers[req.scheduler];
  if (name === undefined) {
    const why = caps.schedulers === false ? "takes no scheduler" : `has no scheduler equivalent to ${req.scheduler}`;
    warnings.push(adapted("scheduler", `${where(ctx)} ${why}; its own default scheduler ran`));
  }
  return name;
}

export function planRequest(req: GenerationRequest, caps: Capabilities, ctx: PlanContext): UpstreamPlan {
  const warnings: Warning[] = [];
  checkSize(req, caps, ctx);
  if (req.initImage && !caps.img2img) throw notSupported("init_image", "does not take an init image (img2img)", ctx);
  if (req.mask) throw notSupported("mask", "does not take an inpainting mask", ctx);
  if (req.loras && req.loras.length > 0) throw notSupported("loras", "does not apply this server's LoRA files", ctx);
  if (req.negativePrompt && !caps.negativePrompt) throw notSupported("negative_prompt", "takes no negative prompt", ctx);
  if (!caps.easelFields) {
    for (const [field, param] of EASEL_FIELDS) {
      if (req[field] !== undefined) throw notSupported(param, `does not take ${param}`, ctx);
    }
  }
  if (req.seed !== undefined) {
    if (caps.seed === false) throw notSupported("seed", "cannot be given a seed, so the image could not be reproduced from it", ctx);
    inRange("seed", req.seed, caps.seed, ctx);
  }
  if (req.steps !== undefined) {
    if (caps.steps === false) warnings.push(adapted("steps", `${where(ctx)} chooses its own number of steps; steps ${req.steps} was not sent`));
    else inRange("steps", req.steps, caps.steps, ctx);
  }
  if (req.guidanceScale !== undefined) {
    if (caps.guidance === false) {
      warnings.push(adapted("guidance_scale", `${where(ctx)} chooses its own guidance; guidance_scale ${req.guidanceScale} was not sent`));
    } else inRange("guidance_scale", req.guidanceScale, caps.guidance, ctx);
  }
  const scheduler = planScheduler(req, caps, ctx, warnings);
  if (req.user !== undefined && !caps.user) warnings.push(adapted("user", `${where(ctx)} takes no end-user id; user was not sent`));
  const format: ImageFormat = caps.formats.includes(req.output.format) ? req.output.format : caps.formats[0];

  const perCall = Math.max(1, caps.maxPerCall);
  const count = Math.ceil(req.n / perCall);
  if (count > 1) {
    warnings.push(adapted("n", `${where(ctx)} makes at most ${perCall} image(s) per request; ${req.n} images were made by ${count} requests`));
  }
  const stream = caps.stream && (req.partialImages ?? 0) > 0 && count === 1;
  if ((req.partialImages ?? 0) > 0 && !stream) {
    warnings.push(adapted("partial_images", `${where(ctx)} streams no partial images here; the stream carries the finished images`));
  }
  let seed = req.seed;
  if (seed === undefined && caps.seed !== false) {
    // Picked here, so every image's seed is known and a retry asks for the same images.
    seed = ctx.randomInt(Math.max(1, caps.seed.min), Math.max(1, Math.min(caps.seed.max, SEED_PICK_MAX) - req.n));
  }
  if (seed !== undefined && caps.seed !== false && count > 1) inRange("seed", seed + req.n - 1, caps.seed, ctx);
  const calls: PlannedCall[] = [];
  for (let i = 0, done = 0; i < count; i++, done += perCall) {
    calls.push({ index: i, n: Math.min(perCall, req.n - done), seed: seed === undefined ? undefined : seed + done, format, scheduler, stream });
  }
  return { calls, warnings };
}

/** The warning for an answer in another format than the client asked, which the job service transcodes. */
export function transcodeWarning(asked: ImageFormat, got: string, provider: string): Warning {
  return adapted("output_format", `provider "${provider}" answered ${got}; the image was transcoded to ${asked}`);
}

/**
 * The coarse limits the job service checks before admission (core/limits.ts); planRequest then checks the exact
 * capabilities (also before admission, through the gateway's check). n is open up to OpenAI's 10 whatever one
 * call makes (fan-out), and what only an Easel upstream takes is accepted only from an Easel upstream, whose own
 * answer then checks the value.
 */
export function upstreamLimits(caps: Capabilities): ModelLimits {
  // A list of sizes is checked whole by planRequest, whose answer names the sizes the upstream renders.
  const sizes = "list" in caps.sizes ? { multiple: 8, min: 64, max: 2048 } : caps.sizes;
  return {
    sizeMultiple: sizes.multiple,
    minSize: sizes.min,
    maxSize: sizes.max,
    maxImages: 10,
    maxSteps: caps.steps === false ? 1000 : caps.steps.max,
    guidance: caps.guidance === false ? { min: 0, max: 100 } : caps.guidance,
    guidanceRescale: caps.easelFields,
    negativePrompt: caps.negativePrompt,
    prompt2: caps.easelFields,
    prompt3: caps.easelFields,
    maxClipSkip: caps.easelFields ? 24 : 0,
    maxSequenceLength: caps.easelFields ? 512 : 0,
    // The upstream applies its own img2img rule; the lenient one here refuses only what no rule could run.
    img2img: caps.img2img ? { rule: "fractional", defaultStrength: 0.8 } : false,
  };
}

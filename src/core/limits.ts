/**
 * What a model accepts, and the one check of a request against it. Each family states its limits
 * (models/<family>/index.ts); ModelInfo carries them, so the job service refuses a request before admission
 * (no job row, no credit reservation, no rate-limit use), and the pipeline runs the same check on the same
 * limits for callers that bypass the job service (the CLI).
 */
import { EaselError, invalidInput } from "./errors.ts";
import type { GenerationRequest, Warning } from "./types.ts";

/** How the network's output is read: ε/v-prediction DDPM models, EDM-trained models, flow-matching models. */
export type ModelKind = "vp" | "edm" | "flow";

/**
 * diffusers' get_timesteps rules for img2img: StableDiffusion(XL)Img2ImgPipeline truncates `steps * strength`
 * to whole steps; StableDiffusion3Img2ImgPipeline keeps it fractional and truncates `steps - steps * strength`.
 */
export type Img2ImgRule = "truncate" | "fractional";

export interface ModelLimits {
  /** Output width and height: multiples of sizeMultiple in [minSize, maxSize]. */
  sizeMultiple: number;
  minSize: number;
  maxSize: number;
  /** Images per request. */
  maxImages: number;
  maxSteps: number;
  guidance: { min: number; max: number };
  guidanceRescale: boolean;
  negativePrompt: boolean;
  /** Second and third text encoders' prompts. */
  prompt2: boolean;
  prompt3: boolean;
  /** Largest clip_skip (0: not accepted). */
  maxClipSkip: number;
  /** Longest T5 prompt in tokens (0: the model has no T5, max_sequence_length and use_t5 are not accepted). */
  maxSequenceLength: number;
  /** img2img, with its start-step rule and diffusers' default strength; false when the family has none. */
  img2img: false | { rule: Img2ImgRule; defaultStrength: number };
  /**
   * What a request costs in memory on this machine, where the family has a memory model: the weights held while
   * the model is loaded, the activations per output pixel per image in the network's batch, and the machine's
   * memory. A request that cannot fit even with guidance run as two calls is refused with the figure it needs.
   */
  memory?: MemoryModel;
  /** Local checkpoints: whether it has its own image safety checker (`safety_check`); unset for upstream models. */
  safetyChecker?: boolean;
}

export interface MemoryModel {
  weightBytes: number;
  activationBytesPerPixel: number;
  /**
   * Activation bytes per output pixel of the VAE decode, which runs one image at a time after the denoiser's last
   * call: the request's peak is the larger of the two.
   */
  decodeBytesPerPixel?: number;
  machineBytes: number;
}

/** Memory a request needs: weights, plus the larger of a denoising call for `batch` images of width x height and one image's decode. */
export function requestBytes(m: MemoryModel, width: number, height: number, batch: number): number {
  const pixels = width * height;
  return m.weightBytes + Math.max(m.activationBytesPerPixel * pixels * batch, (m.decodeBytesPerPixel ?? 0) * pixels);
}

export interface ModelDefaultValues {
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  /** Canonical scheduler id, or undefined for the checkpoint's own scheduler. */
  scheduler?: string;
}

/** The request fields a model's limits constrain (the pipeline parameters have them too, size optional). */
export type LimitedRequest = Pick<
  GenerationRequest,
  | "n"
  | "steps"
  | "guidanceScale"
  | "guidanceRescale"
  | "negativePrompt"
  | "prompt2"
  | "negativePrompt2"
  | "prompt3"
  | "negativePrompt3"
  | "clipSkip"
  | "maxSequenceLength"
  | "useT5"
  | "strength"
> &
  Partial<Pick<GenerationRequest, "width" | "height">>;

/** img2img `t_start` in steps: the schedule runs from step t_start to the end. */
export function img2imgStartStep(rule: Img2ImgRule, steps: number, strength: number): number {
  const init = rule === "truncate" ? Math.min(Math.trunc(steps * strength), steps) : Math.min(steps * strength, steps);
  return Math.trunc(Math.max(steps - init, 0));
}

function intIn(param: string, v: number, min: number, max: number, what = param): void {
  if (!(Number.isInteger(v) && v >= min && v <= max)) {
    throw invalidInput(param, `${what} must be an integer from ${min} to ${max} for this model, got ${v}`, { min, max });
  }
}

/**
 * Checks a request against a model's limits and fills nothing in: throws E_INPUT_INVALID naming the field and the
 * allowed range, or E_NOT_SUPPORTED for an input the model has no use for; returns warnings for inputs the model
 * accepts but ignores.
 */
export function checkModelLimits(req: LimitedRequest, defaults: ModelDefaultValues, limits: ModelLimits, img2img: boolean): Warning[] {
  const warnings: Warning[] = [];
  intIn("n", req.n, 1, limits.maxImages);
  for (const [name, v] of [["width", req.width ?? defaults.width], ["height", req.height ?? defaults.height]] as const) {
    intIn(name, v, limits.minSize, limits.maxSize);
    if (v % limits.sizeMultiple !== 0) {
      throw invalidInput(name, `${name} must be a multiple of ${limits.sizeMultiple} for this model, got ${v}`, {
        multipleOf: limits.sizeMultiple,
      });
    }
  }
  if (limits.memory) {
    const [w, h] = [req.width ?? defaults.width, req.height ?? defaults.height];
    // The smallest batch the pipeline can run: one call per guidance half.
    const need = requestBytes(limits.memory, w, h, req.n);
    if (need > limits.memory.machineBytes) {
      const gib = (b: number) => (b / 1024 ** 3).toFixed(1);
      throw invalidInput(
        "width",
        `a ${w}x${h} request for ${req.n} image(s) needs about ${gib(need)} GiB of memory with this model; this server has ${gib(limits.memory.machineBytes)} GiB`,
        { neededBytes: Math.round(need), machineBytes: limits.memory.machineBytes },
      );
    }
  }
  const steps = req.steps ?? defaults.steps;
  intIn("steps", steps, 1, limits.maxSteps);
  const g = req.guidanceScale ?? defaults.guidanceScale;
  if (!(Number.isFinite(g) && g >= limits.guidance.min && g <= limits.guidance.max)) {
    throw invalidInput("guidance_scale", `guidance_scale must be from ${limits.guidance.min} to ${limits.guidance.max} for this model, got ${g}`, {
      min: limits.guidance.min,
      max: limits.guidance.max,
    });
  }
  if (req.guidanceRescale !== undefined) {
    if (!(req.guidanceRescale >= 0 && req.guidanceRescale <= 1)) {
      throw invalidInput("guidance_rescale", `guidance_rescale must be from 0 to 1, got ${req.guidanceRescale}`, { min: 0, max: 1 });
    }
    if (!limits.guidanceRescale && req.guidanceRescale !== 0) {
      warnings.push({ code: "W_PARAM_IGNORED", message: "this model's pipeline has no guidance_rescale; it was ignored", param: "guidance_rescale" });
    }
  }
  if (!limits.negativePrompt && req.negativePrompt) {
    warnings.push({ code: "W_PARAM_IGNORED", message: "this model takes no negative prompt; it was ignored", param: "negative_prompt" });
  }
  if (!limits.prompt2 && (req.prompt2 !== undefined || req.negativePrompt2 !== undefined)) {
    warnings.push({ code: "W_PARAM_IGNORED", message: "this model has one text encoder: prompt_2 is ignored", param: "prompt_2" });
  }
  if (!limits.prompt3 && (req.prompt3 !== undefined || req.negativePrompt3 !== undefined)) {
    warnings.push({ code: "W_PARAM_IGNORED", message: "this model has no third text encoder: prompt_3 is ignored", param: "prompt_3" });
  }
  if (req.clipSkip !== undefined && req.clipSkip !== 0) {
    if (limits.maxClipSkip === 0) throw new EaselError("E_NOT_SUPPORTED", "clip_skip is not supported for this model", { param: "clip_skip" });
    intIn("clip_skip", req.clipSkip, 0, limits.maxClipSkip);
  }
  if (req.maxSequenceLength !== undefined || req.useT5 !== undefined) {
    const param = req.maxSequenceLength !== undefined ? "max_sequence_length" : "use_t5";
    if (limits.maxSequenceLength === 0) throw new EaselError("E_NOT_SUPPORTED", `${param} applies only to models with a T5 text encoder`, { param });
    if (req.maxSequenceLength !== undefined) intIn("max_sequence_length", req.maxSequenceLength, 1, limits.maxSequenceLength);
  }
  if (img2img) {
    if (!limits.img2img) throw new EaselError("E_NOT_SUPPORTED", "this model does not support img2img (init_image)", { param: "init_image" });
    const strength = req.strength ?? limits.img2img.defaultStrength;
    if (!(Number.isFinite(strength) && strength >= 0 && strength <= 1)) {
      throw invalidInput("strength", `strength must be from 0 to 1, got ${strength}`, { min: 0, max: 1 });
    }
    // strength 0 reproduces the init image (no denoising, Playground's documented meaning); a strength above 0
    // that the pipeline's rule leaves without a step is diffusers' error.
    if (strength > 0 && img2imgStartStep(limits.img2img.rule, steps, strength) >= steps) {
      throw invalidInput("strength", `strength ${strength} with ${steps} steps leaves no denoising step; raise steps or strength`);
    }
  }
  return warnings;
}

/**
 * OpenAI `POST /v1/images/edits` and `/v1/images/variations` (the `openai` SDK's ImageEditParams and
 * ImageCreateVariationParams, multipart) -> GenerationRequest. An edit is img2img from the first image, and
 * inpainting where a mask is given: OpenAI's mask marks the area to edit with transparent pixels (alpha below half),
 * turned here into the canonical mask (white = repaint). Without a mask, an image with transparent pixels is its own
 * mask (dall-e-2's rule). `stream: true` answers image_edit.* events (./stream.ts). A variation is img2img from the image with an empty prompt. Model-dependent defaults and
 * sizes follow generations (./sizes.ts); without a size the input image's size (same rule) is made.
 */
import sharp from "sharp";
import { z } from "zod";
import { EaselError, invalidInput } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest, ModelInfo, Warning } from "../../core/types.ts";
import { checkInputImage } from "../_shared/init-image.ts";
import { parseSize, SIZE_RE } from "../_shared/numbers.ts";
import { resolveSchedulerName, schedulerFields } from "../_shared/sampler-names.ts";
import { type Form, formBool, formInt, formNumber, parseFields, type UploadedFile } from "./multipart.ts";
import { MAX_SEED } from "./schema.ts";
import { chooseSize, isOpenAiModelName, type Size } from "./sizes.ts";
import { defaultResponseFormat, pickModel, type Translated } from "./translate.ts";

/** Easel's extension fields on edits and variations (as on generations). */
const EXTENSIONS = {
  negative_prompt: z.string().max(32000).nullish(),
  seed: formInt(z.number().int().min(0).max(MAX_SEED)).nullish(),
  steps: formInt(z.number().int().min(1)).nullish(),
  guidance_scale: formNumber(z.number().min(0)).nullish(),
  scheduler: z.string().min(1).max(64).nullish(),
  strength: formNumber(z.number().min(0).max(1)).nullish(),
  clip_skip: formInt(z.number().int().min(0)).nullish(),
};

const COMMON = {
  model: z.string().min(1).nullish(),
  n: formInt(z.number().int().min(1).max(10)).nullish(),
  size: z.string().regex(SIZE_RE, 'expected "WxH" (e.g. "1024x1024") or "auto"').or(z.literal("auto")).nullish(),
  response_format: z.enum(["url", "b64_json"]).nullish(),
  user: z.string().max(256).optional(),
};

export const editFields = z.strictObject({
  prompt: z.string().min(1).max(32000),
  ...COMMON,
  quality: z.enum(["standard", "hd", "low", "medium", "high", "auto"]).nullish(),
  output_format: z.enum(["png", "jpeg", "webp"]).nullish(),
  output_compression: formInt(z.number().int().min(0).max(100)).nullish(),
  background: z.enum(["transparent", "opaque", "auto"]).nullish(),
  input_fidelity: z.enum(["high", "low"]).nullish(),
  stream: formBool(z.boolean()).nullish(),
  partial_images: formInt(z.number().int().min(0).max(3)).nullish(),
  ...EXTENSIONS,
});

export const variationFields = z.strictObject({ ...COMMON, ...EXTENSIONS });

export type EditFields = z.output<typeof editFields>;
export type VariationFields = z.output<typeof variationFields>;

export const EDIT_FILE_FIELDS = ["image", "image[]", "mask"] as const;
export const VARIATION_FILE_FIELDS = ["image"] as const;

/** A canonical mask (8-bit grayscale PNG, white = repaint) from an image's alpha: alpha below half is repainted. */
async function maskFromAlpha(bytes: Uint8Array): Promise<Uint8Array> {
  const png = await sharp(bytes).ensureAlpha().extractChannel(3).threshold(128).negate().png().toBuffer();
  return new Uint8Array(png);
}

/** Whether any pixel of an image with an alpha channel is less than half opaque. */
async function hasTransparentPixels(bytes: Uint8Array): Promise<boolean> {
  const stats = await sharp(bytes).ensureAlpha().extractChannel(3).stats();
  return (stats.channels[0]?.min ?? 255) < 128;
}

/** The size to make: the one asked, or the input image's size rounded down to the model's multiple. */
function outputSize(model: ModelInfo, size: string | null | undefined, input: Size, n: number, openAiName: boolean, warnings: Warning[]): Size {
  if (size && size !== "auto") {
    const c = chooseSize(model, parseSize(size), { openAiName, n, from: "size" });
    if (c.warning) warnings.push(c.warning);
    return c.size;
  }
  const m = model.limits.sizeMultiple;
  const rounded = { width: Math.max(m, Math.floor(input.width / m) * m), height: Math.max(m, Math.floor(input.height / m) * m) };
  const c = chooseSize(model, rounded, { openAiName, n, from: "the input image" });
  if (c.warning) warnings.push({ ...c.warning, message: c.warning.message.replace(/^the input image \S+/, `the input image ${input.width}x${input.height}`) });
  else if (rounded.width !== input.width || rounded.height !== input.height) {
    warnings.push({
      code: "W_SIZE_MAPPED",
      param: "size",
      message: `the input image ${input.width}x${input.height} was made as ${rounded.width}x${rounded.height} (sides are multiples of ${m} for the model "${model.id}")`,
    });
  }
  return c.size;
}

function sharedFields(body: VariationFields, model: ModelInfo) {
  return {
    negativePrompt: body.negative_prompt ?? undefined,
    n: body.n ?? 1,
    steps: body.steps ?? undefined,
    guidanceScale: body.guidance_scale ?? undefined,
    ...(body.scheduler ? schedulerFields(resolveSchedulerName(body.scheduler, model.kind)) : {}),
    seed: body.seed ?? undefined,
    user: body.user,
    clipSkip: body.clip_skip ?? undefined,
  };
}

function imagesOf(form: Form): UploadedFile[] {
  const images = form.files.filter((f) => f.field === "image" || f.field === "image[]");
  if (images.length === 0) {
    throw new EaselError("E_INPUT_INVALID", "Missing required parameter: 'image'.", { param: "image", details: { reason: "missing_required_parameter" } });
  }
  return images;
}

export async function translateEdit(form: Form, images: ImageService): Promise<Translated & { prompt: string }> {
  const body = parseFields(editFields, form.fields);
  const uploads = imagesOf(form);
  const maskFile = form.files.find((f) => f.field === "mask");
  if (form.files.filter((f) => f.field === "mask").length > 1) throw invalidInput("mask", "only one mask may be given");
  const model = pickModel(images, body.model);
  const warnings: Warning[] = [];
  // Sizes come from the headers, before any image is decoded.
  const image = await checkInputImage(uploads[0].bytes, "image");
  const mask = maskFile ? await checkInputImage(maskFile.bytes, "mask") : undefined;
  if (uploads.length > 1) {
    warnings.push({
      code: "W_IGNORED",
      param: "image",
      message: `only the first image is edited with this model; the other ${uploads.length - 1} were not used`,
    });
  }
  if (mask && (mask.width !== image.width || mask.height !== image.height)) {
    throw invalidInput("mask", `the mask is ${mask.width}x${mask.height}; it must have the image's dimensions, ${image.width}x${image.height}`);
  }
  if (mask && !mask.hasAlpha) {
    throw invalidInput("mask", "the mask must have an alpha channel: its transparent pixels mark the area to edit");
  }
  let maskBytes: Uint8Array | undefined;
  if (mask) maskBytes = await maskFromAlpha(mask.bytes);
  else if (image.hasAlpha && (await hasTransparentPixels(image.bytes))) maskBytes = await maskFromAlpha(image.bytes);

  const stream = body.stream === true;
  if (!stream && body.partial_images) warnings.push({ code: "W_IGNORED", param: "partial_images", message: "partial_images only applies with stream: true" });
  if (body.quality && body.quality !== "auto") {
    warnings.push({ code: "W_IGNORED", param: "quality", message: `quality "${body.quality}" does not change the generation; use steps to trade time for detail` });
  }
  if (body.input_fidelity) {
    warnings.push({ code: "W_IGNORED", param: "input_fidelity", message: "input_fidelity has no effect; strength sets how much of the image is kept" });
  }
  const n = body.n ?? 1;
  const size = outputSize(model, body.size, image, n, isOpenAiModelName(body.model), warnings);
  const req: GenerationRequest = {
    model: model.id,
    prompt: body.prompt,
    ...sharedFields(body, model),
    width: size.width,
    height: size.height,
    initImage: image.bytes,
    // Inpainting repaints the masked area from noise (StableDiffusionInpaintPipeline's default strength, 1).
    strength: body.strength ?? (maskBytes ? 1 : undefined),
    ...(maskBytes ? { mask: maskBytes } : {}),
    output: {
      format: body.output_format ?? "png",
      quality: body.output_compression ?? undefined,
      background: body.background ?? undefined,
    },
    partialImages: stream ? (body.partial_images ?? 0) : 0,
  };
  const responseFormat = body.response_format ?? defaultResponseFormat(body.model);
  return {
    req,
    model,
    warnings,
    responseFormat,
    stream,
    // Streams always carry base64; only url answers need the images stored.
    delivery: !stream && responseFormat === "url" ? "url" : "bytes",
    size: `${size.width}x${size.height}`,
    prompt: body.prompt,
  };
}

export async function translateVariation(form: Form, images: ImageService): Promise<Translated> {
  const body = parseFields(variationFields, form.fields);
  const uploads = imagesOf(form);
  if (uploads.length > 1) throw invalidInput("image", "a variation is made from one image");
  const model = pickModel(images, body.model);
  const image = await checkInputImage(uploads[0].bytes, "image");
  const warnings: Warning[] = [];
  const size = outputSize(model, body.size, image, body.n ?? 1, isOpenAiModelName(body.model), warnings);
  const req: GenerationRequest = {
    model: model.id,
    prompt: "",
    ...sharedFields(body, model),
    width: size.width,
    height: size.height,
    initImage: image.bytes,
    strength: body.strength ?? undefined,
    output: { format: "png" },
  };
  const responseFormat = body.response_format ?? defaultResponseFormat(body.model);
  return { req, model, warnings, responseFormat, stream: false, delivery: responseFormat === "url" ? "url" : "bytes", size: `${size.width}x${size.height}` };
}

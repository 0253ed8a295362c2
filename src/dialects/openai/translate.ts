/** OpenAI Images request -> GenerationRequest, with the warnings for fields Easel accepts but does not act on. */
import { EaselError, invalidInput } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { GenerationRequest, ModelInfo, Warning } from "../../core/types.ts";
import { resolveModel } from "../_shared/models.ts";
import { parseSize } from "../_shared/numbers.ts";
import { resolveSchedulerName, schedulerFields } from "../_shared/sampler-names.ts";
import type { GenerationBody } from "./schema.ts";
import { chooseSize, isOpenAiModelName } from "./sizes.ts";

export interface Translated {
  req: GenerationRequest;
  model: ModelInfo;
  warnings: Warning[];
  responseFormat: "url" | "b64_json";
  stream: boolean;
  /** Streams always carry base64; only url answers need the images stored. */
  delivery: "url" | "bytes";
  /** The size as it goes back in the response: the requested "WxH", or the model default for "auto". */
  size: string;
}

/** Both sides of a size: multiples of 8 (the VAE's factor) in 64-2048. */
export function checkSide(param: string, v: number): void {
  if (v < 64 || v > 2048 || v % 8 !== 0) {
    throw invalidInput(param, `${param}: each side must be a multiple of 8 between 64 and 2048, got ${v}`, {
      min: 64,
      max: 2048,
      multipleOf: 8,
    });
  }
}

/**
 * `response_format` when the client sends none: OpenAI's gpt-image models always answer `b64_json` (they take no
 * response_format, and clients such as LibreChat's and n8n's image tools read `b64_json` without asking for it);
 * other names answer `url`, as dall-e does.
 */
export function defaultResponseFormat(model: string | null | undefined): "url" | "b64_json" {
  return model?.toLowerCase().startsWith("gpt-image") ? "b64_json" : "url";
}

/** The request carrying the dialect's own warnings too, so the job record keeps them (and replays answer them). */
export function withWarnings(t: Translated): GenerationRequest {
  return t.warnings.length === 0 ? t.req : { ...t.req, warnings: [...t.warnings, ...(t.req.warnings ?? [])] };
}

export function pickModel(images: ImageService, name: string | null | undefined): ModelInfo {
  if (name) return resolveModel(images, [name], { param: "model" });
  const first = images.listModels()[0];
  if (!first) {
    throw new EaselError(
      "E_MODEL_NOT_FOUND",
      "No model is installed on this server. Put a diffusers model folder in the models directory (or map one " +
        "in the config's models.entries), then restart the server.",
      { param: "model" },
    );
  }
  return first;
}

export function translate(body: GenerationBody, images: ImageService): Translated {
  const model = pickModel(images, body.model);
  const warnings: Warning[] = [];

  let width = model.defaults.width;
  let height = model.defaults.height;
  if (body.size && body.size !== "auto") {
    const asked = parseSize(body.size);
    checkSide("size", asked.width);
    checkSide("size", asked.height);
    // OpenAI's sizes on a local model: ./sizes.ts says which size is made.
    const chosen = chooseSize(model, asked, { openAiName: isOpenAiModelName(body.model), n: body.n ?? 1, from: "size" });
    ({ width, height } = chosen.size);
    if (chosen.warning) warnings.push(chosen.warning);
  }

  // background "transparent" is a value OpenAI accepts: the image is made opaque and the job service says so
  // (W_BACKGROUND_OPAQUE); diffusion models produce no alpha.
  const stream = body.stream === true;
  if (!stream && body.partial_images) {
    warnings.push({ code: "W_IGNORED", param: "partial_images", message: "partial_images only applies with stream: true" });
  }
  if (body.quality && body.quality !== "auto") {
    warnings.push({
      code: "W_IGNORED",
      param: "quality",
      message: `quality "${body.quality}" does not change the generation; use steps to trade time for detail`,
    });
  }
  if (body.style) {
    warnings.push({ code: "W_IGNORED", param: "style", message: "style has no effect on diffusion models" });
  }
  if (body.moderation) {
    warnings.push({ code: "W_IGNORED", param: "moderation", message: "this server does not moderate images" });
  }
  const format = body.output_format ?? "png";
  const responseFormat = body.response_format ?? defaultResponseFormat(body.model);

  const req: GenerationRequest = {
    model: model.id,
    prompt: body.prompt,
    negativePrompt: body.negative_prompt ?? undefined,
    n: body.n ?? 1,
    width,
    height,
    steps: body.steps ?? undefined,
    guidanceScale: body.guidance_scale ?? undefined,
    ...(body.scheduler ? schedulerFields(resolveSchedulerName(body.scheduler, model.kind)) : {}),
    seed: body.seed ?? undefined,
    output: {
      format,
      quality: body.output_compression ?? undefined,
      background: body.background ?? undefined,
    },
    partialImages: stream ? (body.partial_images ?? 0) : 0,
    user: body.user,
    clipSkip: body.clip_skip ?? undefined,
    maxSequenceLength: body.max_sequence_length ?? undefined,
    useT5: body.use_t5 ?? undefined,
  };
  const delivery = !stream && responseFormat === "url" ? "url" : "bytes";
  return { req, model, warnings, responseFormat, stream, delivery, size: `${width}x${height}` };
}

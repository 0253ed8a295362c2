/** The local executor: runs a request on the in-process engine (worker thread) from a checkpoint directory. */
import sharp from "sharp";
import { EaselError } from "../../core/errors.ts";
import { INPUT_IMAGE_FORMATS, MAX_INPUT_IMAGE_PIXELS, sniffImageFormat } from "../../core/image-format.ts";
import type { GenerationRequest } from "../../core/types.ts";
import type { Engine } from "../../engine/engine.ts";
import { resolveLora } from "../../models/components/lora.ts";
import { toPipelineParams } from "../../models/pipeline/request.ts";
import type { ImageProvider, ProviderGenerateOptions, ProviderResult } from "../spec.ts";

export interface LocalProviderOptions {
  engine: Engine;
  /** Checkpoint directory of a public model id (the gateway's registry knows). */
  modelDir: (model: string) => string;
  /** Source of random seeds when the request has none; injectable for tests. */
  randomSeed?: () => number;
  /** The image safety checker (config.safety): a checker folder for models without one, what a flag does, check always. */
  safety?: { checkerDir?: string; onFlagged: "black" | "refuse"; always: boolean };
  /** The LoRA folder request LoRAs are named in (`<models>/loras`); without it a request with LoRAs is refused. */
  lorasDir?: string;
}

const MAX_SEED = 2 ** 32 - 1;

/**
 * Decodes an init image to CHW RGB in [-1, 1] at width x height (diffusers resizes with Lanczos). Only PNG, JPEG
 * and WebP reach the decoder, and only up to MAX_INPUT_IMAGE_PIXELS, whoever submitted the job.
 */
export async function decodeInitImage(bytes: Uint8Array, width: number, height: number) {
  if (!sniffImageFormat(bytes)) {
    throw new EaselError("E_INPUT_INVALID", `init_image must be a ${INPUT_IMAGE_FORMATS} image`, { param: "init_image" });
  }
  let raw: Buffer;
  try {
    raw = await sharp(bytes, { limitInputPixels: MAX_INPUT_IMAGE_PIXELS })
      .removeAlpha()
      .resize(width, height, { fit: "fill", kernel: "lanczos3" })
      .raw()
      .toBuffer();
  } catch (e) {
    throw new EaselError("E_INPUT_INVALID", `init_image is not a readable ${INPUT_IMAGE_FORMATS} image`, { param: "init_image", cause: e });
  }
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) data[c * plane + i] = raw[i * 3 + c] / 127.5 - 1;
  return { data, width, height };
}

/**
 * Decodes an inpainting mask as diffusers' mask processor does: grayscale, resized to width x height (Lanczos),
 * scaled to [0, 1] and binarised at 0.5 (1 = repaint). Same format and size checks as the init image.
 */
export async function decodeMask(bytes: Uint8Array, width: number, height: number): Promise<{ data: Float32Array; width: number; height: number }> {
  if (!sniffImageFormat(bytes)) {
    throw new EaselError("E_INPUT_INVALID", `mask must be a ${INPUT_IMAGE_FORMATS} image`, { param: "mask" });
  }
  let raw: Buffer;
  try {
    raw = await sharp(bytes, { limitInputPixels: MAX_INPUT_IMAGE_PIXELS })
      .flatten({ background: "#000000" })
      .toColourspace("b-w")
      .resize(width, height, { fit: "fill", kernel: "lanczos3" })
      .raw()
      .toBuffer();
  } catch (e) {
    throw new EaselError("E_INPUT_INVALID", `mask is not a readable ${INPUT_IMAGE_FORMATS} image`, { param: "mask", cause: e });
  }
  const plane = width * height;
  const channels = raw.length / plane;
  const data = new Float32Array(plane);
  for (let i = 0; i < plane; i++) data[i] = raw[i * channels] / 255 >= 0.5 ? 1 : 0;
  return { data, width, height };
}

export function createLocalProvider(opts: LocalProviderOptions): ImageProvider {
  const randomSeed = opts.randomSeed ?? (() => Math.floor(Math.random() * MAX_SEED) + 1);
  return {
    id: "local",
    async generate(req: GenerationRequest, o: ProviderGenerateOptions): Promise<ProviderResult> {
      const seed = req.seed ?? randomSeed();
      const initImage = req.initImage ? await decodeInitImage(req.initImage, req.width, req.height) : undefined;
      const mask = req.mask ? await decodeMask(req.mask, req.width, req.height) : undefined;
      const loras = (req.loras ?? []).map((l) => {
        if (!opts.lorasDir) throw new EaselError("E_NOT_SUPPORTED", "this server has no LoRA folder", { param: "loras" });
        return { file: resolveLora(opts.lorasDir, l.name), scale: l.scale };
      });
      const params = toPipelineParams(req, { seed, initImage, mask, loras });
      const check = req.safetyCheck === true || opts.safety?.always === true;
      const safety = check ? { requested: req.safetyCheck === true, checkerDir: opts.safety?.checkerDir, onFlagged: opts.safety?.onFlagged ?? "black" } : undefined;
      // A preview would show an image before the safety checker has seen it.
      if (safety) params.previews = 0;
      const out = await opts.engine.run(opts.modelDir(req.model), params, {
        signal: o.signal,
        safety,
        onStep: (step, totalSteps) => o.onEvent?.({ type: "progress", step, totalSteps }),
        onPreview: (index, step, images) => {
          if (images[0]) o.onEvent?.({ type: "preview", index, step, image: { ...images[0], seed } });
        },
      });
      return { seed, images: out.images.map((img) => ({ ...img, seed })), warnings: out.warnings };
    },
  };
}

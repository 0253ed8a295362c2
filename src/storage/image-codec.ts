/**
 * Encodes generated images to png / jpeg / webp with sharp, and transcodes already-encoded upstream images
 * when the client asked for another format.
 *
 * `quality` (0-100, the range the dialects document): jpeg and webp quality (default 90 and 90). The encoder
 * takes 1-100, so 1-100 pass through unchanged and 0 maps onto 1, its lowest quality (0 and 1 give the same
 * bytes). For png, which is lossless, it picks the zlib effort: level = round((100 - quality) * 9 / 100), so
 * 100 = fastest/largest, 0 = smallest; default level 6.
 */
import sharp, { type Metadata, type Sharp } from "sharp";
import { EaselError, invalidInput } from "../core/errors.ts";
import type { ImageFormat } from "../core/types.ts";

/** 8-bit RGB pixels, HWC: [height, width, 3] flattened. */
export interface RgbPixels {
  width: number;
  height: number;
  rgb: Uint8Array;
}

export interface EncodeOptions {
  format: ImageFormat;
  quality?: number;
}

export interface EncodedImage {
  bytes: Uint8Array;
  mime: string;
  format: ImageFormat;
  width: number;
  height: number;
}

export const MIME_OF: Record<ImageFormat, string> = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };

function checkQuality(q: number | undefined): void {
  if (q !== undefined && !(Number.isInteger(q) && q >= 0 && q <= 100)) {
    throw invalidInput("output.quality", `quality must be an integer from 0 to 100, got ${q}`, { min: 0, max: 100 });
  }
}

/** Documented quality 0-100 -> sharp's jpeg/webp quality 1-100. */
function lossyQuality(q: number | undefined): number {
  return q === undefined ? 90 : Math.max(1, q);
}

function withFormat(img: Sharp, o: EncodeOptions): Sharp {
  switch (o.format) {
    case "png":
      return img.png({ compressionLevel: o.quality === undefined ? 6 : Math.round(((100 - o.quality) * 9) / 100) });
    case "jpeg":
      return img.jpeg({ quality: lossyQuality(o.quality) });
    case "webp":
      return img.webp({ quality: lossyQuality(o.quality) });
    default:
      throw invalidInput("output.format", `format must be png, jpeg or webp, got ${String(o.format)}`);
  }
}

export async function encodeImage(raw: RgbPixels, o: EncodeOptions): Promise<EncodedImage> {
  checkQuality(o.quality);
  const { width, height, rgb } = raw;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new EaselError("E_INTERNAL", `image size must be positive integers, got ${width}x${height}`);
  }
  if (rgb.length !== width * height * 3) {
    throw new EaselError("E_INTERNAL", `rgb has ${rgb.length} bytes, expected ${width}*${height}*3`);
  }
  const src = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
  const bytes = await withFormat(src, o).toBuffer();
  return { bytes: new Uint8Array(bytes), mime: MIME_OF[o.format], format: o.format, width, height };
}

const FORMAT_OF_SHARP: Record<string, ImageFormat | undefined> = { png: "png", jpeg: "jpeg", jpg: "jpeg", webp: "webp" };

/** Keeps encoded bytes when they already are in the requested format (and no quality was asked), else re-encodes. */
export async function transcodeImage(bytes: Uint8Array, o: EncodeOptions): Promise<EncodedImage> {
  checkQuality(o.quality);
  let meta: Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (e) {
    throw new EaselError("E_UPSTREAM_FAILED", "the upstream image could not be decoded", { cause: e });
  }
  const have = FORMAT_OF_SHARP[meta.format ?? ""];
  if (!have || !meta.width || !meta.height) {
    throw new EaselError("E_UPSTREAM_FAILED", `the upstream image has an unsupported format ${meta.format}`);
  }
  if (have === o.format && o.quality === undefined) {
    return { bytes, mime: MIME_OF[have], format: have, width: meta.width, height: meta.height };
  }
  const out = await withFormat(sharp(bytes).removeAlpha(), o).toBuffer({ resolveWithObject: true });
  return {
    bytes: new Uint8Array(out.data),
    mime: MIME_OF[o.format],
    format: o.format,
    width: out.info.width,
    height: out.info.height,
  };
}

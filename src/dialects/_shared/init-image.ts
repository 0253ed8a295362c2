/**
 * Uploaded init images (base64 in a JSON body, or multipart files): cheap checks first (base64 alphabet, magic bytes, the pixel size
 * the header declares), and only then is the image handed to a decoder.
 */
import sharp from "sharp";
import { invalidInput } from "../../core/errors.ts";
import { INPUT_IMAGE_FORMATS, MAX_INPUT_IMAGE_PIXELS, sniffImageFormat } from "../../core/image-format.ts";

/** Decodes base64 (a `data:` URL prefix is tolerated) to the image's bytes, checked as described above. */
export async function decodeBase64InitImage(s: string, param = "init_image"): Promise<Uint8Array> {
  const b64 = s.replace(/^data:[^,]*;base64,/, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64)) throw invalidInput(param, `${param} must be base64`);
  return (await checkInputImage(Buffer.from(b64, "base64"), param)).bytes;
}

/** An uploaded image's bytes (multipart), checked as described above; its size and whether it has an alpha channel. */
export async function checkInputImage(
  bytes: Uint8Array,
  param: string,
): Promise<{ bytes: Uint8Array; width: number; height: number; hasAlpha: boolean }> {
  const format = sniffImageFormat(bytes);
  if (!format) throw invalidInput(param, `${param} must be a ${INPUT_IMAGE_FORMATS} image`);
  let width: number | undefined;
  let height: number | undefined;
  let hasAlpha = false;
  try {
    // Reads the header only: nothing is decoded yet.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (meta.format === format) ({ width, height, hasAlpha } = meta);
  } catch {
    // Reported below.
  }
  if (!width || !height) throw invalidInput(param, `${param} is not a readable ${INPUT_IMAGE_FORMATS} image`);
  if (width * height > MAX_INPUT_IMAGE_PIXELS) {
    throw invalidInput(param, `${param} is ${width}x${height}; at most ${MAX_INPUT_IMAGE_PIXELS} pixels (4096x4096) are accepted`);
  }
  return { bytes: new Uint8Array(bytes), width, height, hasAlpha };
}

/**
 * Input images (init_image) are accepted as PNG, JPEG or WebP only, the formats the API pages document. The format
 * is told from the magic bytes before any decoder sees the bytes, so no other decoder (SVG, HEIF, GIF, TIFF, ...)
 * is ever reachable from a request.
 */
export type InputImageFormat = "png" | "jpeg" | "webp";

export const INPUT_IMAGE_FORMATS = "PNG, JPEG or WebP";

/** Largest init image accepted, in pixels (its header is read before it is decoded): 4096 x 4096. */
export const MAX_INPUT_IMAGE_PIXELS = 4096 * 4096;

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, sig: readonly number[], at = 0): boolean {
  return bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);
}

/** The format of an encoded image by its signature, or undefined when it is none of the accepted ones. */
export function sniffImageFormat(bytes: Uint8Array): InputImageFormat | undefined {
  if (startsWith(bytes, PNG)) return "png";
  // SOI followed by the start of the next marker.
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  // "RIFF" <size> "WEBP"
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) return "webp";
  return undefined;
}

/**
 * Encodes generated images to png / jpeg / webp with sharp, and transcodes already-encoded upstream images
 * when the client asked for another format.
 *
 * `quality` (0-100, the range the dialects document): jpeg and webp quality (default 90 and 90). The encoder
 * takes 1-100, so 1-100 pass through unchanged and 0 maps onto 1, its lowest quality (0 and 1 give the same
 * bytes). For png, which is lossless, it picks the zlib effort: level = round((100 - quality) * 9 / 100), so
 * 100 = fastest/largest, 0 = smallest; default level 6.
 *
 * `parameters` (the generation parameters in AUTOMATIC1111's infotext format) travel in the image as A1111 writes
 * them: a PNG `parameters` text chunk; EXIF UserComment in JPEG and WebP, plus the same text in XMP
 * (exif:UserComment), since libvips writes UserComment as ASCII only.
 */
import { crc32 } from "node:zlib";
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
  /** Generation parameters written into the image's metadata (see above). */
  parameters?: string;
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

/** The PNG keyword A1111 stores its infotext under. */
export const PNG_PARAMETERS_KEYWORD = "parameters";

/**
 * One PNG text chunk: tEXt when the text is ASCII, else iTXt with UTF-8 text (tEXt is Latin-1 by the PNG spec, but
 * readers differ on it, libvips reading UTF-8; iTXt is read the same by all, PIL's image.info included). Written
 * here because sharp has no way to add PNG text; the chunk is length, type, data and a CRC-32 (node:zlib's).
 */
function pngTextChunk(keyword: string, text: string): Buffer {
  const ascii = !/[^\x20-\x7e\n\r\t]/.test(text);
  const type = ascii ? "tEXt" : "iTXt";
  // iTXt: keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text.
  const data = Buffer.concat([
    Buffer.from(keyword, "latin1"),
    Buffer.from(ascii ? [0] : [0, 0, 0, 0, 0]),
    Buffer.from(text, ascii ? "latin1" : "utf8"),
  ]);
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, "latin1");
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

/** The PNG with a text chunk right after IHDR (the signature, 8 bytes, then IHDR: 4 + 4 + 13 + 4 bytes). */
export function withPngText(png: Uint8Array, keyword: string, text: string): Uint8Array {
  const IHDR_END = 8 + 25;
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (bytes.length < IHDR_END || bytes.toString("latin1", 12, 16) !== "IHDR") {
    throw new EaselError("E_INTERNAL", "not a PNG with an IHDR chunk first");
  }
  return new Uint8Array(Buffer.concat([bytes.subarray(0, IHDR_END), pngTextChunk(keyword, text), bytes.subarray(IHDR_END)]));
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] as string);
}

/** An XMP packet holding the text as exif:UserComment (the XMP name of the EXIF tag). */
function userCommentXmp(text: string): string {
  return (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">' +
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" ' +
    'xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">' +
    `${xmlEscape(text)}</rdf:li></rdf:Alt></exif:UserComment></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>`
  );
}

/** JPEG / WebP metadata through sharp (PNG text is added after encoding, by withPngText). */
function withMetadata(img: Sharp, o: EncodeOptions): Sharp {
  if (o.parameters === undefined || o.format === "png") return img;
  return img.withExif({ IFD2: { UserComment: o.parameters } }).withXmp(userCommentXmp(o.parameters));
}

function addPngParameters(bytes: Uint8Array, o: EncodeOptions): Uint8Array {
  return o.parameters !== undefined && o.format === "png" ? withPngText(bytes, PNG_PARAMETERS_KEYWORD, o.parameters) : bytes;
}

function withFormat(img: Sharp, o: EncodeOptions): Sharp {
  img = withMetadata(img, o);
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
  const bytes = addPngParameters(new Uint8Array(await withFormat(src, o).toBuffer()), o);
  return { bytes, mime: MIME_OF[o.format], format: o.format, width, height };
}

const FORMAT_OF_SHARP: Record<string, ImageFormat | undefined> = { png: "png", jpeg: "jpeg", jpg: "jpeg", webp: "webp" };

/**
 * Keeps encoded bytes when they already are in the requested format (and no quality was asked), else re-encodes.
 * Kept PNGs get the parameters chunk; kept JPEG and WebP images keep the upstream's metadata.
 */
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
    return { bytes: addPngParameters(bytes, o), mime: MIME_OF[have], format: have, width: meta.width, height: meta.height };
  }
  const out = await withFormat(sharp(bytes).removeAlpha(), o).toBuffer({ resolveWithObject: true });
  return {
    bytes: addPngParameters(new Uint8Array(out.data), o),
    mime: MIME_OF[o.format],
    format: o.format,
    width: out.info.width,
    height: out.info.height,
  };
}

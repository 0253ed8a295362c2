/**
 * Images as upstreams answer them: base64 in JSON, raw bodies, or URLs to fetch. Only PNG, JPEG and WebP are
 * accepted (told from their signature before any decoder sees the bytes); anything else is a bad response.
 */
import sharp from "sharp";
import type { EncodedUpstreamImage, RawImage } from "../spec.ts";
import { UpstreamError } from "./errors.ts";
import { readBytes, type UpstreamHttp } from "./http.ts";

const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" } as const;
export type UpstreamImageFormat = keyof typeof MIME;

function startsWith(bytes: Uint8Array, sig: readonly number[], at = 0): boolean {
  return bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);
}

/** The format of encoded bytes by signature: PNG, JPEG (SOI + marker), WebP ("RIFF" .. "WEBP"); undefined otherwise. */
export function sniffFormat(bytes: Uint8Array): UpstreamImageFormat | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) return "webp";
  return undefined;
}

export function upstreamImage(bytes: Uint8Array, seed: number, provider: string): EncodedUpstreamImage {
  const format = sniffFormat(bytes);
  if (!format) throw new UpstreamError("bad_response", `provider "${provider}" answered an image that is not PNG, JPEG or WebP`);
  return { bytes, mime: MIME[format], seed };
}

export function fromBase64(b64: unknown, seed: number, provider: string): EncodedUpstreamImage {
  if (typeof b64 !== "string" || b64 === "") throw new UpstreamError("bad_response", `provider "${provider}" answered without image data`);
  const data = b64.startsWith("data:") ? b64.slice(b64.indexOf(",") + 1) : b64;
  return upstreamImage(new Uint8Array(Buffer.from(data, "base64")), seed, provider);
}

/**
 * Fetches an image URL from an upstream's answer. No credentials are sent (the URL may point at another host, a
 * CDN), only http(s) is followed, and the size and time limits of the provider apply.
 */
export async function downloadImage(http: UpstreamHttp, url: unknown, signal: AbortSignal, provider: string): Promise<Uint8Array> {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new UpstreamError("bad_response", `provider "${provider}" answered an image URL that is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UpstreamError("bad_response", `provider "${provider}" answered an image URL that is not http(s)`);
  }
  return http.exchange(parsed.href, { method: "GET", headers: { accept: "image/*" } }, signal, async (res) => {
    if (!res.ok) throw new UpstreamError(res.status >= 500 ? "server" : "bad_response", `provider "${provider}" answered ${res.status} for an image it linked`, { status: res.status });
    return readBytes(res, provider);
  });
}

/** Decodes a streamed partial image so the job service can encode it like a local preview frame. */
export async function decodePreview(img: EncodedUpstreamImage): Promise<RawImage> {
  const { data, info } = await sharp(img.bytes).removeAlpha().toColourspace("srgb").raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), seed: img.seed };
}

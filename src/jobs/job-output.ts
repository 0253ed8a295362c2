/** Turning provider images into encoded, content-addressed, optionally stored images and results. */
import { createHash } from "node:crypto";
import { EaselError } from "../core/errors.ts";
import { requestInfotext, type SamplerNames } from "../core/image-format.ts";
import type { GeneratedImage, GenerationEvent, GenerationRequest, ModelInfo, Warning } from "../core/types.ts";
import { type EncodedUpstreamImage, isRawImage, type ProviderEvent, type ProviderResult, type RawImage } from "../providers/spec.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import { type EncodedImage, encodeImage, transcodeImage } from "../storage/image-codec.ts";
import type { ImageRow, StoredImage } from "../storage/metadata-store.ts";
import type { UrlSigner } from "../storage/url-signer.ts";

export const sha256Hex = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");

/** `parameters`: the text written into the image's metadata (requestInfotext), when the server writes it. */
export async function encodeOne(img: RawImage | EncodedUpstreamImage, req: GenerationRequest, parameters?: string): Promise<EncodedImage> {
  const o = { format: req.output.format, quality: req.output.quality, parameters };
  return isRawImage(img) ? encodeImage(img, o) : transcodeImage(img.bytes, o);
}

export function toGenerated(enc: EncodedImage, seed: number): GeneratedImage {
  return { id: sha256Hex(enc.bytes), bytes: enc.bytes, mime: enc.mime, format: enc.format, width: enc.width, height: enc.height, seed };
}

/** `/v1/files/<token>.<ext>` (the image format's extension); the HTTP layer prefixes the public base URL. */
export function signedPath(signer: UrlSigner, id: string, ttlSeconds: number, format: string): string {
  return `/v1/files/${signer.sign(id, ttlSeconds, format).token}`;
}

/** Puts the images in the blob store (content-addressed) and returns their rows. */
export async function storeImages(blobs: BlobStore, images: GeneratedImage[], now: number): Promise<ImageRow[]> {
  const rows: ImageRow[] = [];
  for (const img of images) {
    if (!(await blobs.has(img.id))) await blobs.put(img.id, img.bytes, img.mime);
    if (!rows.some((r) => r.id === img.id)) {
      rows.push({ id: img.id, mime: img.mime, format: img.format, width: img.width, height: img.height, size: img.bytes.length, createdAt: now });
    }
  }
  return rows;
}

export function toStored(img: GeneratedImage): StoredImage {
  return { id: img.id, mime: img.mime, format: img.format, width: img.width, height: img.height, seed: img.seed };
}

/** Canonical JSON (sorted keys) so that equal requests hash equal however their fields were ordered. */
export function canonicalJson(v: unknown): string {
  if (v instanceof Uint8Array) return JSON.stringify({ sha256: sha256Hex(v), bytes: v.length });
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** The request as recorded in the job row: init image bytes replaced by their hash and size. */
export function recordedParams(req: GenerationRequest): Record<string, unknown> {
  const { initImage, ...rest } = req;
  return JSON.parse(
    canonicalJson(initImage ? { ...rest, initImage: { sha256: sha256Hex(initImage), bytes: initImage.length } } : rest),
  ) as Record<string, unknown>;
}

/** Blob key of an init image, from its sha256 (which the job row records). */
export function initImageKey(sha256: string): string {
  return `init-${sha256}`;
}

/**
 * The request as persisted: the recorded params with the init image's bytes read back from the blob store (the
 * inverse of recordedParams, which replaced them by their hash and size).
 */
export async function requestFromRow(params: Record<string, unknown>, blobs: BlobStore): Promise<GenerationRequest> {
  const { initImage, mask, ...rest } = params as Record<string, unknown> & { initImage?: { sha256: string }; mask?: { sha256: string } };
  if (initImage === undefined) return rest as unknown as GenerationRequest;
  const bytes = await blobs.get(initImageKey(initImage.sha256));
  if (!bytes) throw new EaselError("E_INTERNAL", "the job's init image is no longer stored");
  // The inpainting mask (canonicalJson recorded it by hash and size too) is kept beside the init image.
  const maskBytes = mask === undefined ? undefined : await blobs.get(initImageKey(mask.sha256));
  if (mask !== undefined && !maskBytes) throw new EaselError("E_INTERNAL", "the job's inpainting mask is no longer stored");
  return { ...(rest as unknown as GenerationRequest), initImage: bytes, ...(maskBytes ? { mask: maskBytes } : {}) };
}

/** A preview frame as the client gets it: encoded in the request's format, never stored; undefined when it fails to encode. */
export function previewEvent(jobId: string, req: GenerationRequest, e: Extract<ProviderEvent, { type: "preview" }>): Promise<GenerationEvent | undefined> {
  return encodeImage(e.image, { format: req.output.format, quality: req.output.quality }).then(
    (enc): GenerationEvent => ({ type: "preview", jobId, index: e.index, step: e.step, image: toGenerated(enc, e.image.seed) }),
    () => undefined,
  );
}

/**
 * A run's images encoded in the request's format (with A1111 infotext when `metadata`), and the warnings its answer
 * carries: the request's, the executor's, and an opaque background where a transparent one was asked for.
 */
export async function resultImages(
  req: GenerationRequest,
  res: ProviderResult,
  model: ModelInfo,
  o: { metadata: boolean; samplerNames?: SamplerNames },
): Promise<{ images: GeneratedImage[]; warnings: Warning[] }> {
  const warnings: Warning[] = [...(req.warnings ?? []), ...res.warnings];
  if (req.output.background === "transparent") {
    warnings.push({ code: "W_BACKGROUND_OPAQUE", message: "transparent backgrounds are not supported; the image is opaque", param: "background" });
  }
  const images: GeneratedImage[] = [];
  for (const img of res.images) {
    const parameters = o.metadata ? requestInfotext(req, img.seed, model.defaults, o.samplerNames) : undefined;
    images.push(toGenerated(await encodeOne(img, req, parameters), img.seed));
  }
  return { images, warnings };
}

/**
 * Input images (init_image) are accepted as PNG, JPEG or WebP only, the formats the API pages document. The format
 * is told from the magic bytes before any decoder sees the bytes, so no other decoder (SVG, HEIF, GIF, TIFF, ...)
 * is ever reachable from a request.
 */
import type { GenerationRequest } from "./types.ts";

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

/** What an image's generation-parameters text (AUTOMATIC1111's "infotext") says. */
export interface InfotextFields {
  prompt: string;
  negativePrompt?: string;
  steps?: number;
  sampler?: string;
  scheduleType?: string;
  cfgScale?: number;
  seed: number;
  width: number;
  height: number;
  model: string;
  denoisingStrength?: number;
  /** In A1111's units: 1 = the last CLIP layer (no skip), 2 = the penultimate. */
  clipSkip?: number;
}

/** A1111's `quote`: a value with a comma, colon or newline is written as a JSON string. */
function quoteValue(v: string | number): string {
  const s = String(v);
  return /[,:\n]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * The infotext AUTOMATIC1111 writes into its images and returns in `info.infotexts` (modules/processing.py,
 * create_infotext): the prompt, a "Negative prompt:" line when there is one, then `Key: value` pairs:
 * `Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15`.
 * Tools that read A1111 metadata (its PNG Info tab, image hosts) parse this text.
 */
export function formatInfotext(f: InfotextFields): string {
  const pairs: [string, string | number | undefined][] = [
    ["Steps", f.steps],
    ["Sampler", f.sampler],
    ["Schedule type", f.scheduleType],
    ["CFG scale", f.cfgScale],
    ["Seed", f.seed],
    ["Size", `${f.width}x${f.height}`],
    ["Model", f.model],
    ["Denoising strength", f.denoisingStrength],
    ["Clip skip", f.clipSkip !== undefined && f.clipSkip > 1 ? f.clipSkip : undefined],
  ];
  const params = pairs
    .filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== "")
    .map(([k, v]) => `${k}: ${quoteValue(v)}`)
    .join(", ");
  const negative = f.negativePrompt ? `\nNegative prompt: ${f.negativePrompt}` : "";
  return `${f.prompt}${negative}\n${params}`;
}

/** A sampler id in the words of the tools that read infotexts (A1111's "DPM++ 2M" + "Karras"). */
export type SamplerNames = (id: string | undefined) => { samplerName: string; scheduleLabel: string };

/**
 * The infotext of one image of a request, for every dialect: the model's defaults fill what the request left
 * out; the sampler is named by `names` (A1111's sampler and schedule names, given by the composition root: the
 * vocabulary belongs to the dialects), else by Easel's scheduler id (which the A1111 dialect accepts back too).
 */
export function requestInfotext(
  req: GenerationRequest,
  seed: number,
  defaults: { steps: number; guidanceScale: number; scheduler?: string },
  names?: SamplerNames,
): string {
  const id = req.scheduler ?? defaults.scheduler;
  const named = names && id !== undefined ? names(id) : undefined;
  return formatInfotext({
    prompt: req.prompt,
    negativePrompt: req.negativePrompt,
    steps: req.steps ?? defaults.steps,
    sampler: named ? named.samplerName : id,
    scheduleType: named && named.scheduleLabel !== "Automatic" ? named.scheduleLabel : undefined,
    cfgScale: req.guidanceScale ?? defaults.guidanceScale,
    seed,
    width: req.width,
    height: req.height,
    model: req.model,
    denoisingStrength: req.initImage ? req.strength : undefined,
    clipSkip: req.clipSkip ? req.clipSkip + 1 : undefined,
  });
}

/**
 * The contract every executor implements: the local engine (providers/local) and each upstream provider
 * (providers/<id>). The job service calls `generate` once per job, passes an AbortSignal for cancellation and
 * receives progress and preview frames through `onEvent`.
 */
import type { GenerationRequest, RouteRecord, Warning } from "../core/types.ts";

/** A decoded image as produced by a local pipeline. */
export interface RawImage {
  width: number;
  height: number;
  /** RGB, HWC, 8-bit: [height, width, 3] flattened, length width*height*3. */
  rgb: Uint8Array;
  seed: number;
}

/** An already-encoded image as returned by an upstream API (png/jpeg/webp bytes). */
export interface EncodedUpstreamImage {
  bytes: Uint8Array;
  mime: string;
  seed: number;
}

export type ProviderEvent =
  | { type: "progress"; step: number; totalSteps: number }
  | { type: "preview"; index: number; step: number; image: RawImage };

export interface ProviderResult {
  /** Seed of the batch (first image). */
  seed: number;
  images: (RawImage | EncodedUpstreamImage)[];
  warnings: Warning[];
  /** How the gateway served the job (upstream targets, fallbacks); recorded with the job. */
  route?: RouteRecord;
}

export interface ProviderGenerateOptions {
  /** Aborted when the client goes away or the job is cancelled; the provider rejects with an AbortError. */
  signal?: AbortSignal;
  onEvent?: (e: ProviderEvent) => void;
}

export interface ImageProvider {
  id: string;
  /**
   * Checks a request against what this executor can do, before the job is admitted: throws an EaselError (400)
   * naming the field it cannot honour. Executors that take whatever their model's limits allow leave it out.
   */
  check?(req: GenerationRequest): void;
  generate(req: GenerationRequest, opts: ProviderGenerateOptions): Promise<ProviderResult>;
}

export function isRawImage(img: RawImage | EncodedUpstreamImage): img is RawImage {
  return (img as RawImage).rgb !== undefined;
}

import type { ModelDefaultValues, ModelKind, ModelLimits } from "./limits.ts";

/** Canonical domain types. Every dialect translates into GenerationRequest; every executor returns GenerationResult. */

export type ImageFormat = "png" | "jpeg" | "webp";

export interface OutputOptions {
  format: ImageFormat;
  /** 0-100; jpeg/webp quality (for png: zlib effort mapped from compression). */
  quality?: number;
  /** "transparent" needs a model that produces alpha; none of the diffusion families do. */
  background?: "transparent" | "opaque" | "auto";
}

export interface GenerationRequest {
  /** Public model id as resolved by the model registry (e.g. "playground-v2.5", "sdxl", "sd15"). */
  model: string;
  prompt: string;
  negativePrompt?: string;
  /** SDXL / SD3 second and third text encoders' prompts (default: the main prompt). */
  prompt2?: string;
  negativePrompt2?: string;
  prompt3?: string;
  negativePrompt3?: string;
  /** Images to make from this prompt. */
  n: number;
  width: number;
  height: number;
  /** Undefined means the model's default. */
  steps?: number;
  guidanceScale?: number;
  guidanceRescale?: number;
  /** Canonical scheduler id from samplers/index.ts (e.g. "dpmpp_2m_karras"); undefined = the checkpoint's own. */
  scheduler?: string;
  /** Undefined means random; the seed actually used is reported in the result. */
  seed?: number;
  /** img2img: the encoded init image (png/jpeg/webp bytes) and how much of the schedule to run. */
  initImage?: Uint8Array;
  strength?: number;
  /**
   * Inpainting (with initImage): an encoded PNG/JPEG/WebP mask read as grayscale at the output size, diffusers'
   * convention: white (>= 50%) is repainted, black is kept.
   */
  mask?: Uint8Array;
  output: OutputOptions;
  /** Number of preview frames to stream (OpenAI partial_images); 0 = none. */
  partialImages?: number;
  /** Free-form end-user id from the client, recorded with the job. */
  user?: string;
  /** CLIP layers to skip from the end (1 = penultimate), where the model accepts it (ModelInfo.limits). */
  clipSkip?: number;
  /** T5 prompt length in tokens, models with T5 (SD3). */
  maxSequenceLength?: number;
  /** false runs a T5 model without T5 (its part of the context is zeros), saving memory and time. */
  useT5?: boolean;
  /** Run the model's image safety checker on the outputs (flagged images black or refused, config.safety). */
  safetyCheck?: boolean;
  /** LoRAs from the models directory's loras/ folder (file name without .safetensors) and their scales, in order. */
  loras?: { name: string; scale: number }[];
  /** Warnings found while translating the request (e.g. W_SAMPLER_SUBSTITUTED); returned with the result. */
  warnings?: Warning[];
}

export interface Warning {
  code: string;
  message: string;
  param?: string;
}

export interface GeneratedImage {
  /** Content address (sha256 hex of the encoded bytes). */
  id: string;
  bytes: Uint8Array;
  mime: string;
  format: ImageFormat;
  width: number;
  height: number;
  /** The seed that reproduces this image on its own (seed of the batch + index where the family does that). */
  seed: number;
  /** Signed URL when the image was stored. */
  url?: string;
}

export interface GenerationResult {
  jobId: string;
  model: string;
  created: number;
  /** Seed of the batch (first image). */
  seed: number;
  images: GeneratedImage[];
  warnings: Warning[];
  /** Credits charged for this request and what is left, when the key has a balance. */
  creditsCharged?: number;
  remainingCredits?: number;
  timings?: { queuedMs: number; runMs: number };
}

export type GenerationEvent =
  | { type: "queued"; jobId: string; position: number }
  | { type: "progress"; jobId: string; step: number; totalSteps: number }
  | { type: "preview"; jobId: string; index: number; step: number; image: GeneratedImage };

export interface ModelInfo {
  id: string;
  family: string;
  /** How the network's output is read (sampler vocabularies map per kind). */
  kind: ModelKind;
  /** Where it runs: "local" or the upstream provider's id. */
  backend: string;
  aliases: string[];
  defaults: ModelDefaultValues;
  /** What requests the model accepts; checked before admission. */
  limits: ModelLimits;
  created: number;
  /** A sentence on what the model is, where Easel knows (the built-in model). */
  description?: string;
}

/** One try of one upstream call, or of a local model, while the gateway served a job. */
export interface RouteAttempt {
  /** The registered model name this try served (the requested model or one of its fallbacks). */
  model: string;
  /** "local" or the configured provider id. */
  provider: string;
  upstreamModel?: string;
  /** Which upstream call of a fanned-out request (0 when the request took one call). */
  call: number;
  /** 1 for a call's first try, 2 for its first retry, ... */
  attempt: number;
  outcome: "ok" | "failed" | "skipped";
  /** The upstream's HTTP status, when it answered. */
  status?: number;
  /** Why it failed or was skipped: connection, timeout, server, rate_limited, out_of_credits, circuit_open, ... */
  reason?: string;
  ms: number;
}

/** How the gateway served a job, recorded with it (never a key or an upstream URL). */
export interface RouteRecord {
  /** Where the images came from. */
  target: { model: string; provider: string; providerType?: string; upstreamModel?: string };
  /** True when the target is a fallback of the requested model. */
  fallback: boolean;
  attempts: RouteAttempt[];
  /** Time spent in the gateway, from the first try to the answer. */
  latencyMs: number;
}

/**
 * The contract of an upstream provider type (providers/<type>/index.ts): what each upstream model accepts
 * (its capabilities, from which the registry builds its ModelInfo), how a GenerationRequest becomes the provider's
 * wire requests, and how one wire request is made. Retries, the circuit breaker and fallbacks live in the gateway;
 * a provider makes exactly one HTTP exchange per `call`.
 */
import type { ModelDefaultValues, ModelKind, ModelLimits } from "../../core/limits.ts";
import type { GenerationRequest, ImageFormat, Warning } from "../../core/types.ts";
import type { EncodedUpstreamImage, ProviderEvent } from "../spec.ts";
import type { UpstreamHttp } from "./http.ts";

export const PROVIDER_TYPES = ["openai", "segmind", "monica", "playground"] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** One configured provider (config `providers.<id>`), its key resolved. */
export interface UpstreamSettings {
  /** The config key ("openai", "backup", ...): names the provider in warnings, records and logs. */
  id: string;
  type: ProviderType;
  /** Without a trailing slash. */
  baseUrl: string;
  apiKey?: string;
  /** openai type: the upstream also takes Easel's extension fields (another Easel). */
  easelExtensions: boolean;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
}

export interface Range {
  min: number;
  max: number;
}

/** What an upstream model accepts. Anything outside it is adapted with a W_PARAM_ADAPTED warning or refused (400). */
export interface Capabilities {
  /** The sizes it renders: a list of "WxH", or sides that are multiples of `multiple` in [min, max]. */
  sizes: { list: readonly string[] } | { multiple: number; min: number; max: number };
  /** Images one wire request returns; more are fanned out over several requests. */
  maxPerCall: number;
  /** Formats it can be asked for; the first is asked when the client's format is not among them. */
  formats: readonly ImageFormat[];
  negativePrompt: boolean;
  /** Seeds it takes (false: it has no seed field). */
  seed: false | Range;
  steps: false | Range;
  guidance: false | Range;
  /** Canonical scheduler id -> the provider's name; "canonical" passes Easel's ids; false: no scheduler field. */
  schedulers: false | "canonical" | Readonly<Record<string, string>>;
  img2img: boolean;
  /** Streams partial images (OpenAI's `stream` + `partial_images`). */
  stream: boolean;
  /** Takes OpenAI's `user` field. */
  user: boolean;
  /** Takes Easel's clip_skip, max_sequence_length, use_t5, guidance_rescale, prompt_2/prompt_3 (an Easel upstream). */
  easelFields: boolean;
}

/** An upstream model as the registry sees it. */
export interface UpstreamModelSpec {
  family: string;
  kind: ModelKind;
  defaults: ModelDefaultValues;
  limits: ModelLimits;
  caps: Capabilities;
}

/** One wire request of a planned generation: `n` images from `seed` (undefined: the upstream picks). */
export interface PlannedCall {
  index: number;
  n: number;
  seed?: number;
  /** The format asked of the upstream. */
  format: ImageFormat;
  /** The provider's scheduler name, when one is sent. */
  scheduler?: string;
  /** Stream partial images through (openai only). */
  stream: boolean;
}

export interface UpstreamPlan {
  calls: PlannedCall[];
  warnings: Warning[];
}

export interface CallOptions {
  signal: AbortSignal;
  /** Sent as Idempotency-Key, the same on every retry of one call, so an upstream that keeps them never runs it twice. */
  idempotencyKey: string;
  /** Partial images passed through while the call streams. */
  onEvent?: (e: ProviderEvent) => void;
}

export interface UpstreamClient {
  readonly settings: UpstreamSettings;
  /** Throws an EaselError (400) naming the first field this upstream model cannot honour. */
  plan(req: GenerationRequest, upstreamModel: string): UpstreamPlan;
  /** One HTTP exchange; rejects with an UpstreamError (or the AbortError of `signal`). */
  call(req: GenerationRequest, upstreamModel: string, call: PlannedCall, opts: CallOptions): Promise<EncodedUpstreamImage[]>;
  close(): Promise<void>;
}

export interface UpstreamDeps {
  http: UpstreamHttp;
  /** Random integer in [min, max] (seeds the gateway picks so that every image's seed is known). */
  randomInt: (min: number, max: number) => number;
}

export interface UpstreamProviderType {
  type: ProviderType;
  /** The upstream model's spec; throws E_INPUT_INVALID for a model whose wire format this type does not know. */
  describe(upstreamModel: string, settings: Pick<UpstreamSettings, "id" | "easelExtensions">): UpstreamModelSpec;
  create(settings: UpstreamSettings, deps: UpstreamDeps): UpstreamClient;
}

/**
 * What OpenAI's image models accept (the Images API reference and the `openai` SDK's ImageGenerateParams), and
 * what any other OpenAI-compatible server is assumed to accept: OpenAI's core fields only, or, with
 * `easelExtensions`, everything an Easel upstream's OpenAI dialect takes (its own answer then checks the ranges).
 */
import { invalidInput } from "../../core/errors.ts";
import type { Capabilities, UpstreamModelSpec, UpstreamSettings } from "../_shared/upstream.ts";
import { upstreamLimits } from "../_shared/capabilities.ts";

/** Request fields a model takes beyond prompt, model, n and size. */
export interface OpenAiTraits {
  /** Takes response_format (DALL·E and most compatible servers); gpt-image models always answer base64. */
  responseFormat: boolean;
  /** Takes output_format / output_compression. */
  outputFormat: boolean;
  /** Takes background. */
  background: boolean;
}

const NONE = { negativePrompt: false, seed: false, steps: false, guidance: false, schedulers: false, img2img: false, easelFields: false } as const;

interface Entry {
  family: string;
  caps: Capabilities;
  traits: OpenAiTraits;
}

const GPT_IMAGE: Entry = {
  family: "gpt-image",
  caps: { ...NONE, sizes: { list: ["1024x1024", "1536x1024", "1024x1536"] }, maxPerCall: 10, formats: ["png", "jpeg", "webp"], stream: true, user: true },
  traits: { responseFormat: false, outputFormat: true, background: true },
};
const DALL_E_3: Entry = {
  family: "dall-e",
  caps: { ...NONE, sizes: { list: ["1024x1024", "1792x1024", "1024x1792"] }, maxPerCall: 1, formats: ["png"], stream: false, user: true },
  traits: { responseFormat: true, outputFormat: false, background: false },
};
const DALL_E_2: Entry = {
  family: "dall-e",
  caps: { ...NONE, sizes: { list: ["256x256", "512x512", "1024x1024"] }, maxPerCall: 10, formats: ["png"], stream: false, user: true },
  traits: { responseFormat: true, outputFormat: false, background: false },
};
/** An OpenAI-compatible server of unknown make: the fields every such server takes, PNG answers. */
const COMPATIBLE: Entry = {
  family: "upstream",
  caps: { ...NONE, sizes: { multiple: 8, min: 64, max: 2048 }, maxPerCall: 10, formats: ["png"], stream: false, user: true },
  traits: { responseFormat: true, outputFormat: false, background: false },
};
/** Another Easel: its OpenAI dialect's fields, extensions included. */
const EASEL: Entry = {
  family: "upstream",
  caps: {
    sizes: { multiple: 8, min: 64, max: 2048 },
    maxPerCall: 10,
    formats: ["png", "jpeg", "webp"],
    negativePrompt: true,
    seed: { min: 0, max: Number.MAX_SAFE_INTEGER },
    steps: { min: 1, max: 1000 },
    guidance: { min: 0, max: 100 },
    schedulers: "canonical",
    img2img: false,
    stream: true,
    user: true,
    easelFields: true,
  },
  traits: { responseFormat: true, outputFormat: true, background: true },
};

export function openAiEntry(upstreamModel: string, settings: Pick<UpstreamSettings, "easelExtensions">): Entry {
  if (settings.easelExtensions) return EASEL;
  if (/^gpt-image/.test(upstreamModel)) return GPT_IMAGE;
  if (upstreamModel === "dall-e-3") return DALL_E_3;
  if (upstreamModel === "dall-e-2") return DALL_E_2;
  return COMPATIBLE;
}

export function describeOpenAiModel(upstreamModel: string, settings: Pick<UpstreamSettings, "id" | "easelExtensions">): UpstreamModelSpec {
  if (upstreamModel.trim() === "") throw invalidInput("upstreamModel", `provider "${settings.id}": upstreamModel must not be empty`);
  const e = openAiEntry(upstreamModel, settings);
  return {
    family: e.family,
    kind: "vp",
    // steps only prices the request when the client gives none; the upstream chooses its own.
    defaults: { width: 1024, height: 1024, steps: 30, guidanceScale: e.caps.guidance === false ? 0 : 5 },
    limits: upstreamLimits(e.caps),
    caps: e.caps,
  };
}

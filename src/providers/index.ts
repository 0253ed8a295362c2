/** Every upstream provider type; adding one is one folder plus one line here. The local executor is providers/local. */
import type { ProviderType, UpstreamProviderType } from "./_shared/upstream.ts";
import { monicaProviderType } from "./monica/index.ts";
import { openAiProviderType } from "./openai/index.ts";
import { playgroundProviderType } from "./playground/index.ts";
import { segmindProviderType } from "./segmind/index.ts";

export const PROVIDER_REGISTRY: Readonly<Record<ProviderType, UpstreamProviderType>> = {
  openai: openAiProviderType,
  segmind: segmindProviderType,
  monica: monicaProviderType,
  playground: playgroundProviderType,
};

export type { ProviderType, UpstreamClient, UpstreamModelSpec, UpstreamProviderType, UpstreamSettings } from "./_shared/upstream.ts";
export { PROVIDER_TYPES } from "./_shared/upstream.ts";

/** Segmind models this provider type speaks, with what each accepts (specs/002 for Playground v2.5). */
import { invalidInput } from "../../core/errors.ts";
import { upstreamLimits } from "../_shared/capabilities.ts";
import type { Capabilities, UpstreamModelSpec, UpstreamSettings } from "../_shared/upstream.ts";

/**
 * One image per request: the page documents only the raw image/jpeg answer, which carries one image, so n images
 * are n requests (W_PARAM_ADAPTED). Seeds -1 (random) to 999999999999999; the gateway always sends one.
 */
const PLAYGROUND_V25: Capabilities = {
  sizes: { list: ["1024x1024"] },
  maxPerCall: 1,
  formats: ["jpeg"],
  negativePrompt: true,
  seed: { min: 0, max: 999999999999999 },
  steps: { min: 20, max: 100 },
  guidance: { min: 1, max: 25 },
  schedulers: false,
  img2img: false,
  stream: false,
  user: false,
  easelFields: false,
};

const MODELS: Record<string, UpstreamModelSpec> = {
  "playground-v2.5": {
    family: "playground",
    kind: "edm",
    defaults: { width: 1024, height: 1024, steps: 25, guidanceScale: 3 },
    limits: upstreamLimits(PLAYGROUND_V25),
    caps: PLAYGROUND_V25,
  },
};

/** The upstream model is the slug of `POST /v1/<slug>`. */
export function describeSegmindModel(upstreamModel: string, settings: Pick<UpstreamSettings, "id">): UpstreamModelSpec {
  const m = MODELS[upstreamModel];
  if (!m) {
    throw invalidInput(
      "upstreamModel",
      `provider "${settings.id}" (segmind): no request format is known for model "${upstreamModel}"; known: ${Object.keys(MODELS).join(", ")}`,
    );
  }
  return m;
}

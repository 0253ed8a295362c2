/**
 * Monica's image models (specs/000 and specs/003) and which of its two endpoints serves each: `playground-v2-5` on
 * `/v1/image/gen/playground`, `sdxl` / `sd3` / `sd3_5` on `/v1/image/gen/sd`, with the pages' per-model ranges.
 */
import { invalidInput } from "../../core/errors.ts";
import { upstreamLimits } from "../_shared/capabilities.ts";
import type { Capabilities, UpstreamModelSpec, UpstreamSettings } from "../_shared/upstream.ts";

export type MonicaEndpoint = "playground" | "sd";

// Copied from src/dialects/_shared/sampler-names.ts#MONICA_SAMPLERS: the exact entries, reversed (canonical id -> name);
// sampler-name-copies.test.ts there checks it.
const MONICA_SCHEDULERS: Record<string, string> = {
  euler: "K_EULER",
  ddim: "DDIM",
  ddpm: "DDPM",
  dpmpp_2m: "K_DPMPP_2M",
  dpmpp_2s_a: "K_DPMPP_2S_ANCESTRAL",
  dpm2: "K_DPM_2",
  dpm2_a: "K_DPM_2_ANCESTRAL",
  euler_a: "K_EULER_ANCESTRAL",
  heun: "K_HEUN",
  lms: "K_LMS",
  edm_euler: "K_EULER",
  edm_dpmpp_2m: "K_DPMPP_2M",
  flow_euler: "K_EULER",
  flow_dpmpp_2m: "K_DPMPP_2M",
  flow_heun: "K_HEUN",
};

const SD_SIZES = ["1024x1024", "1344x768", "768x1344"];
const BASE = { stream: false, user: false, easelFields: false, img2img: false } as const;

function sd3(steps: number, defaults: { steps: number; guidanceScale: number }): UpstreamModelSpec {
  const caps: Capabilities = {
    ...BASE,
    sizes: { list: SD_SIZES },
    // num_outputs is sdxl-only on the page: one image per request.
    maxPerCall: 1,
    formats: ["webp"],
    negativePrompt: false,
    seed: { min: 1, max: 4294967295 },
    steps: { min: 1, max: steps },
    guidance: { min: 0, max: 20 },
    schedulers: false,
  };
  return { family: "sd3", kind: "flow", defaults: { width: 1024, height: 1024, ...defaults }, limits: upstreamLimits(caps), caps };
}

function spec(family: string, kind: UpstreamModelSpec["kind"], defaults: { steps: number; guidanceScale: number }, caps: Capabilities): UpstreamModelSpec {
  return { family, kind, defaults: { width: 1024, height: 1024, ...defaults }, limits: upstreamLimits(caps), caps };
}

const MODELS: Record<string, { endpoint: MonicaEndpoint; spec: UpstreamModelSpec }> = {
  "playground-v2-5": {
    endpoint: "playground",
    spec: spec("playground", "edm", { steps: 30, guidanceScale: 7 }, {
      ...BASE,
      sizes: { list: ["1024x1024", "768x1344", "1344x768"] },
      maxPerCall: 4,
      formats: ["png"],
      negativePrompt: true,
      // 0 means random on Monica: the gateway sends its own seed so the image's seed is known.
      seed: { min: 1, max: 2147483647 },
      steps: { min: 1, max: 50 },
      // No documented range; Easel's own Monica dialect takes 0-30.
      guidance: { min: 0, max: 30 },
      schedulers: false,
    }),
  },
  sdxl: {
    endpoint: "sd",
    spec: spec("sdxl", "vp", { steps: 50, guidanceScale: 7.5 }, {
      ...BASE,
      sizes: { list: SD_SIZES },
      maxPerCall: 4,
      formats: ["png"],
      negativePrompt: true,
      seed: { min: 1, max: 4294967295 },
      steps: { min: 1, max: 500 },
      guidance: { min: 1, max: 50 },
      schedulers: MONICA_SCHEDULERS,
    }),
  },
  sd3: { endpoint: "sd", spec: sd3(28, { steps: 28, guidanceScale: 3.5 }) },
  sd3_5: { endpoint: "sd", spec: sd3(50, { steps: 40, guidanceScale: 4.5 }) },
};

export function monicaModel(upstreamModel: string, settings: Pick<UpstreamSettings, "id">): { endpoint: MonicaEndpoint; spec: UpstreamModelSpec } {
  const m = MODELS[upstreamModel];
  if (!m) {
    throw invalidInput(
      "upstreamModel",
      `provider "${settings.id}" (monica): unknown model "${upstreamModel}"; Monica serves ${Object.keys(MODELS).join(", ")}`,
    );
  }
  return m;
}

export function describeMonicaModel(upstreamModel: string, settings: Pick<UpstreamSettings, "id">): UpstreamModelSpec {
  return monicaModel(upstreamModel, settings).spec;
}

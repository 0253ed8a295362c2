/** Playground's external API models (specs/001, `filter_model`), with the page's ranges and 18 scheduler names. */
import { invalidInput } from "../../core/errors.ts";
import { upstreamLimits } from "../_shared/capabilities.ts";
import type { Capabilities, UpstreamModelSpec, UpstreamSettings } from "../_shared/upstream.ts";

// Copied from src/dialects/_shared/sampler-names.ts#PLAYGROUND_SAMPLERS: the exact entries, reversed (canonical id ->
// name), the page's default first where two names run the same sampler; sampler-name-copies.test.ts there checks it.
const PLAYGROUND_SCHEDULERS: Record<string, string> = {
  dpmpp_2m_karras: "DPMPP_2M_K",
  euler_a: "EULER_A",
  ddim: "DDIM",
  plms: "PLMS",
  euler: "EULER",
  heun: "HEUN",
  dpm2: "DPM2",
  dpm2_a: "DPM2_A",
  lms: "LMS",
  lms_karras: "LMS_K",
  dpmpp_2m: "DPMPP_2M",
  dpmpp_2m_lu: "DPMPP_2M_LU",
  dpmpp_2m_sde: "DPMPP_2M_SDE",
  dpmpp_2m_sde_karras: "DPMPP_2M_SDE_K",
  dpmpp_2m_sde_lu: "DPMPP_2M_SDE_LU",
  dpmpp_sde: "DPMPP_SDE",
  dpmpp_sde_karras: "DPMPP_SDE_K",
  edm_dpmpp_2m: "DPMPP_2M_K",
  edm_euler: "EULER",
  edm_dpmpp_2m_exp: "DPMPP_2M_LU",
  edm_dpmpp_2m_sde: "DPMPP_2M_SDE",
  edm_dpmpp_2m_sde_exp: "DPMPP_2M_SDE_LU",
  flow_euler: "EULER",
  flow_heun: "HEUN",
};

function caps(sizeMultiple: number): Capabilities {
  return {
    sizes: { multiple: sizeMultiple, min: 64, max: 2048 },
    // "All response images are base64 PNG": one image per request.
    maxPerCall: 1,
    formats: ["png"],
    negativePrompt: true,
    seed: { min: 1, max: 65535 },
    steps: { min: 1, max: 150 },
    guidance: { min: 0, max: 30 },
    schedulers: PLAYGROUND_SCHEDULERS,
    img2img: true,
    stream: false,
    user: false,
    easelFields: false,
  };
}

function spec(kind: UpstreamModelSpec["kind"], guidanceScale: number, c: Capabilities): UpstreamModelSpec {
  return { family: "playground", kind, defaults: { width: 1024, height: 1024, steps: 50, guidanceScale }, limits: upstreamLimits(c), caps: c };
}

// Playground v2.5 is EDM-trained; the other two publish no weights, so their kind is the common one (vp) unless the
// model entry says otherwise (models.entries.<name>.kind).
const MODELS: Record<string, UpstreamModelSpec> = {
  "Playground_v2.5": spec("edm", 3, caps(8)),
  Photorealism: spec("vp", 7, caps(8)),
  Playground_v3: spec("vp", 7, caps(32)),
};

export function describePlaygroundModel(upstreamModel: string, settings: Pick<UpstreamSettings, "id">): UpstreamModelSpec {
  const m = MODELS[upstreamModel];
  if (!m) {
    throw invalidInput(
      "upstreamModel",
      `provider "${settings.id}" (playground): unknown filter_model "${upstreamModel}"; the API serves ${Object.keys(MODELS).join(", ")}`,
    );
  }
  return m;
}

/**
 * Sampler vocabularies of the outside world (a dialect concern: samplers know only Easel's ids). Foreign names →
 * canonical scheduler ids, per model kind (ModelInfo.kind), following MODELS.md §5.8.
 * vp = ε/v-prediction DDPM-trained models (SD1.5, SDXL), edm = EDM-trained (Playground v2.5), flow = SD3/SD3.5.
 * `exact: false` marks a nearest analogue: the name's own algorithm has no implementation for that model kind
 * here (the hosted APIs do not publish theirs), so the id given is the closest sampler that is correct for the model.
 */
import { EaselError } from "../../core/errors.ts";
import type { ModelKind } from "../../core/limits.ts";
import type { Warning } from "../../core/types.ts";
import { SCHEDULER_IDS } from "../../samplers/index.ts";

export type { ModelKind } from "../../core/limits.ts";
export interface NameMapping {
  id: string;
  exact: boolean;
}
type Table = Record<string, Record<ModelKind, NameMapping>>;

const e = (id: string): NameMapping => ({ id, exact: true });
const near = (id: string): NameMapping => ({ id, exact: false });

/** Playground API `scheduler` (18 values, default DPMPP_2M_K). */
export const PLAYGROUND_SAMPLERS: Table = {
  DPMPP_2M_K: { vp: e("dpmpp_2m_karras"), edm: e("edm_dpmpp_2m"), flow: near("flow_dpmpp_2m") },
  EULER_A: { vp: e("euler_a"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  DDIM: { vp: e("ddim"), edm: e("edm_euler"), flow: e("flow_euler") },
  PLMS: { vp: e("plms"), edm: near("edm_dpmpp_2m"), flow: near("flow_euler") },
  EULER: { vp: e("euler"), edm: e("edm_euler"), flow: e("flow_euler") },
  HEUN: { vp: e("heun"), edm: near("edm_euler"), flow: e("flow_heun") },
  DPM2: { vp: e("dpm2"), edm: near("edm_euler"), flow: near("flow_heun") },
  DPM2_A: { vp: e("dpm2_a"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  LMS: { vp: e("lms"), edm: near("edm_dpmpp_2m"), flow: near("flow_euler") },
  LMS_K: { vp: e("lms_karras"), edm: near("edm_dpmpp_2m"), flow: near("flow_euler") },
  // Undocumented internal variant; treated as LMS (MODELS.md §10).
  LMS_NIHANTH: { vp: near("lms"), edm: near("edm_dpmpp_2m"), flow: near("flow_euler") },
  DPMPP_2M: { vp: e("dpmpp_2m"), edm: e("edm_dpmpp_2m"), flow: near("flow_dpmpp_2m") },
  DPMPP_2M_LU: { vp: e("dpmpp_2m_lu"), edm: e("edm_dpmpp_2m_exp"), flow: near("flow_dpmpp_2m") },
  DPMPP_2M_SDE: { vp: e("dpmpp_2m_sde"), edm: e("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  DPMPP_2M_SDE_K: { vp: e("dpmpp_2m_sde_karras"), edm: e("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  DPMPP_2M_SDE_LU: { vp: e("dpmpp_2m_sde_lu"), edm: e("edm_dpmpp_2m_sde_exp"), flow: near("flow_euler") },
  DPMPP_SDE: { vp: e("dpmpp_sde"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  DPMPP_SDE_K: { vp: e("dpmpp_sde_karras"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
};
export const PLAYGROUND_DEFAULT_SAMPLER = "DPMPP_2M_K";

/** Monica / Stability `scheduler` (10 values, default K_EULER). */
export const MONICA_SAMPLERS: Table = {
  K_EULER: { vp: e("euler"), edm: e("edm_euler"), flow: e("flow_euler") },
  DDIM: { vp: e("ddim"), edm: e("edm_euler"), flow: e("flow_euler") },
  DDPM: { vp: e("ddpm"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  K_DPMPP_2M: { vp: e("dpmpp_2m"), edm: e("edm_dpmpp_2m"), flow: e("flow_dpmpp_2m") },
  K_DPMPP_2S_ANCESTRAL: { vp: e("dpmpp_2s_a"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  K_DPM_2: { vp: e("dpm2"), edm: near("edm_euler"), flow: near("flow_heun") },
  K_DPM_2_ANCESTRAL: { vp: e("dpm2_a"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  K_EULER_ANCESTRAL: { vp: e("euler_a"), edm: near("edm_dpmpp_2m_sde"), flow: near("flow_euler") },
  K_HEUN: { vp: e("heun"), edm: near("edm_euler"), flow: e("flow_heun") },
  K_LMS: { vp: e("lms"), edm: near("edm_dpmpp_2m"), flow: near("flow_euler") },
};
export const MONICA_DEFAULT_SAMPLER = "K_EULER";

export interface ResolvedScheduler {
  id: string;
  /** W_SAMPLER_SUBSTITUTED when the name's own algorithm does not exist for this model kind and its nearest ran. */
  warning?: Warning;
}

/** A canonical id, or a Playground / Monica name, → canonical id for the model's kind (ModelInfo.kind). */
export function resolveSchedulerName(name: string, kind: ModelKind): ResolvedScheduler {
  if (SCHEDULER_IDS.includes(name)) return { id: name };
  const key = name.toUpperCase();
  const hit = PLAYGROUND_SAMPLERS[key]?.[kind] ?? MONICA_SAMPLERS[key]?.[kind];
  if (!hit)
    throw new EaselError("E_INPUT_INVALID", `Unknown scheduler "${name}".`, {
      param: "scheduler",
      details: { allowed: [...SCHEDULER_IDS, ...Object.keys(PLAYGROUND_SAMPLERS), ...Object.keys(MONICA_SAMPLERS)] },
    });
  if (hit.exact) return { id: hit.id };
  const model = { vp: "an ε/v-prediction", edm: "an EDM", flow: "a flow-matching" }[kind];
  return {
    id: hit.id,
    warning: {
      code: "W_SAMPLER_SUBSTITUTED",
      message: `scheduler ${name} has no implementation for ${model} model; ${hit.id}, its nearest equivalent, ran instead`,
      param: "scheduler",
    },
  };
}

/** The request fields for a resolved scheduler: its id, and the substitution warning carried with the request. */
export function schedulerFields(r: ResolvedScheduler): { scheduler: string; warnings?: Warning[] } {
  return r.warning ? { scheduler: r.id, warnings: [r.warning] } : { scheduler: r.id };
}

/**
 * The canonical scheduler ids meant for a model kind, for pickers (GET /v1/models): `edm_*` for EDM models,
 * `flow_*` for flow-matching models, the rest for ε/v-prediction models.
 */
export function schedulersForKind(kind: ModelKind): string[] {
  const prefix = kind === "vp" ? undefined : `${kind}_`;
  return SCHEDULER_IDS.filter((id) => (prefix ? id.startsWith(prefix) : !id.startsWith("edm_") && !id.startsWith("flow_")));
}

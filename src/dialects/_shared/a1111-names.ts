/**
 * AUTOMATIC1111's sampler and schedule vocabulary (stable-diffusion-webui 1.10: modules/sd_samplers_kdiffusion.py,
 * sd_samplers_timesteps.py, sd_schedulers.py) → Easel's canonical scheduler ids, per model kind (MODELS.md §5.8).
 * A1111 names a sampler ("DPM++ 2M") and a schedule type ("Karras") separately; Easel's ids bundle both
 * ("dpmpp_2m_karras"). Legacy combined names ("DPM++ 2M Karras") and the k-diffusion aliases ("k_dpmpp_2m") are
 * read as A1111 1.9+ reads them. A pair with no implementation here runs its nearest sampler, with
 * W_SAMPLER_SUBSTITUTED saying which.
 */
import { EaselError } from "../../core/errors.ts";
import type { ModelKind } from "../../core/limits.ts";
import type { Warning } from "../../core/types.ts";
import { SCHEDULER_IDS } from "../../samplers/index.ts";

interface A1111Sampler {
  name: string;
  aliases: string[];
  /** The schedule "Automatic" picks for this sampler in A1111. */
  defaultSchedule: "uniform" | "karras" | "exponential";
  /** ε/v models: the id with the model's own (uniform) spacing, and with Karras sigmas where one exists. */
  vp: { uniform: string; karras?: string; exact: boolean };
  edm: { id: string; exact: boolean };
  flow: { id: string; exact: boolean };
  /** A1111's `options` object of /sdapi/v1/samplers. */
  options: Record<string, string | boolean>;
}

const s = (
  name: string,
  aliases: string[],
  defaultSchedule: A1111Sampler["defaultSchedule"],
  vp: A1111Sampler["vp"],
  edm: [string, boolean],
  flow: [string, boolean],
  options: Record<string, string | boolean> = {},
): A1111Sampler => ({ name, aliases, defaultSchedule, vp, edm: { id: edm[0], exact: edm[1] }, flow: { id: flow[0], exact: flow[1] }, options });

/** In A1111's order (the order of its UI and of /sdapi/v1/samplers). */
export const A1111_SAMPLERS: readonly A1111Sampler[] = [
  s("DPM++ 2M", ["k_dpmpp_2m"], "karras", { uniform: "dpmpp_2m", karras: "dpmpp_2m_karras", exact: true }, ["edm_dpmpp_2m", true], ["flow_dpmpp_2m", true], { scheduler: "karras" }),
  s("DPM++ SDE", ["k_dpmpp_sde"], "karras", { uniform: "dpmpp_sde", karras: "dpmpp_sde_karras", exact: true }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { scheduler: "karras", second_order: true, brownian_noise: true }),
  s("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], "exponential", { uniform: "dpmpp_2m_sde", karras: "dpmpp_2m_sde_karras", exact: true }, ["edm_dpmpp_2m_sde", true], ["flow_euler", false], { scheduler: "exponential", brownian_noise: true }),
  s("DPM++ 2M SDE Heun", ["k_dpmpp_2m_sde_heun"], "exponential", { uniform: "dpmpp_2m_sde", karras: "dpmpp_2m_sde_karras", exact: false }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { scheduler: "exponential", brownian_noise: true, solver_type: "heun" }),
  s("DPM++ 2S a", ["k_dpmpp_2s_a"], "karras", { uniform: "dpmpp_2s_a", exact: true }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { scheduler: "karras", uses_ensd: true, second_order: true }),
  s("DPM++ 3M SDE", ["k_dpmpp_3m_sde"], "exponential", { uniform: "dpmpp_2m_sde", karras: "dpmpp_2m_sde_karras", exact: false }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { scheduler: "exponential", discard_next_to_last_sigma: true, brownian_noise: true }),
  s("Euler a", ["k_euler_a", "k_euler_ancestral"], "uniform", { uniform: "euler_a", exact: true }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { uses_ensd: true }),
  s("Euler", ["k_euler"], "uniform", { uniform: "euler", karras: "euler_karras", exact: true }, ["edm_euler", true], ["flow_euler", true]),
  s("LMS", ["k_lms"], "uniform", { uniform: "lms", karras: "lms_karras", exact: true }, ["edm_dpmpp_2m", false], ["flow_euler", false]),
  s("Heun", ["k_heun"], "uniform", { uniform: "heun", karras: "heun_karras", exact: true }, ["edm_euler", false], ["flow_heun", true], { second_order: true }),
  s("DPM2", ["k_dpm_2"], "uniform", { uniform: "dpm2", karras: "dpm2_karras", exact: true }, ["edm_euler", false], ["flow_heun", false], { discard_next_to_last_sigma: true, second_order: true }),
  s("DPM2 a", ["k_dpm_2_a"], "uniform", { uniform: "dpm2_a", karras: "dpm2_a_karras", exact: true }, ["edm_dpmpp_2m_sde", false], ["flow_euler", false], { discard_next_to_last_sigma: true, uses_ensd: true, second_order: true }),
  s("DPM fast", ["k_dpm_fast"], "uniform", { uniform: "dpmpp_2m", exact: false }, ["edm_dpmpp_2m", false], ["flow_dpmpp_2m", false], { uses_ensd: true }),
  s("DPM adaptive", ["k_dpm_ad"], "uniform", { uniform: "dpmpp_2m", exact: false }, ["edm_dpmpp_2m", false], ["flow_dpmpp_2m", false], { uses_ensd: true }),
  s("Restart", ["restart"], "karras", { uniform: "heun", karras: "heun_karras", exact: false }, ["edm_euler", false], ["flow_heun", false], { scheduler: "karras", second_order: true }),
  s("DDIM", ["ddim"], "uniform", { uniform: "ddim", exact: true }, ["edm_euler", true], ["flow_euler", true]),
  s("DDIM CFG++", ["ddim_cfgpp"], "uniform", { uniform: "ddim", exact: false }, ["edm_euler", false], ["flow_euler", false]),
  s("PLMS", ["plms"], "uniform", { uniform: "plms", exact: true }, ["edm_dpmpp_2m", false], ["flow_euler", false]),
  s("UniPC", ["unipc"], "uniform", { uniform: "unipc", karras: "unipc_karras", exact: true }, ["edm_dpmpp_2m", false], ["flow_euler", false]),
  s("LCM", ["k_lcm"], "uniform", { uniform: "lcm", exact: true }, ["edm_euler", false], ["flow_euler", false]),
];

interface A1111Schedule {
  name: string;
  label: string;
  aliases: string[] | null;
  default_rho: number;
  need_inner_model: boolean;
}

/** /sdapi/v1/schedulers, in A1111's order. */
export const A1111_SCHEDULES: readonly A1111Schedule[] = [
  { name: "automatic", label: "Automatic", aliases: null, default_rho: -1, need_inner_model: false },
  { name: "uniform", label: "Uniform", aliases: null, default_rho: -1, need_inner_model: true },
  { name: "karras", label: "Karras", aliases: null, default_rho: 7, need_inner_model: false },
  { name: "exponential", label: "Exponential", aliases: null, default_rho: -1, need_inner_model: false },
  { name: "polyexponential", label: "Polyexponential", aliases: null, default_rho: 1, need_inner_model: false },
  { name: "sgm_uniform", label: "SGM Uniform", aliases: ["SGMUniform"], default_rho: -1, need_inner_model: true },
  { name: "kl_optimal", label: "KL Optimal", aliases: null, default_rho: -1, need_inner_model: false },
  { name: "align_your_steps", label: "Align Your Steps", aliases: null, default_rho: -1, need_inner_model: false },
  { name: "simple", label: "Simple", aliases: null, default_rho: -1, need_inner_model: true },
  { name: "normal", label: "Normal", aliases: null, default_rho: -1, need_inner_model: true },
  { name: "ddim", label: "DDIM", aliases: null, default_rho: -1, need_inner_model: true },
  { name: "beta", label: "Beta", aliases: null, default_rho: -1, need_inner_model: true },
];

/**
 * Schedules that space the model's own timesteps evenly (Easel's plain ids do that with the checkpoint's
 * spacing); the others change the sigmas in ways only Karras has an implementation of here.
 */
const EVEN_SPACING = new Set(["uniform", "normal", "simple", "sgm_uniform", "ddim"]);

export interface A1111Resolved {
  /** Canonical scheduler id. */
  id: string;
  /** A1111's own names, as they go back in `info` and the infotext. */
  samplerName: string;
  scheduleLabel: string;
  warning?: Warning;
}

function findSampler(name: string): A1111Sampler | undefined {
  const lower = name.toLowerCase();
  return A1111_SAMPLERS.find((x) => x.name.toLowerCase() === lower || x.aliases.includes(lower));
}

function findSchedule(name: string): A1111Schedule | undefined {
  const lower = name.toLowerCase();
  return A1111_SCHEDULES.find((x) => x.name === lower || x.label.toLowerCase() === lower || x.aliases?.some((a) => a.toLowerCase() === lower));
}

/** "DPM++ 2M Karras" → ["DPM++ 2M", "Karras"], as A1111's get_sampler_and_scheduler splits legacy names. */
function splitLegacy(name: string): [A1111Sampler, A1111Schedule] | undefined {
  for (const sched of A1111_SCHEDULES) {
    const suffix = ` ${sched.label}`;
    if (name.toLowerCase().endsWith(suffix.toLowerCase())) {
      const sampler = findSampler(name.slice(0, -suffix.length));
      if (sampler) return [sampler, sched];
    }
  }
  return undefined;
}

/** The A1111 sampler and schedule a canonical id corresponds to (for ids sent back from an Easel infotext). */
function fromCanonical(id: string): [A1111Sampler, A1111Schedule] | undefined {
  for (const x of A1111_SAMPLERS) {
    if (!x.vp.exact) continue;
    if (x.vp.karras === id) return [x, A1111_SCHEDULES[2]];
    if (x.vp.uniform === id) return [x, A1111_SCHEDULES[1]];
  }
  return undefined;
}

function notFound(name: string, param: string): EaselError {
  return new EaselError("E_INPUT_INVALID", `Sampler not found: "${name}".`, {
    param,
    details: { reason: "sampler_not_found", allowed: A1111_SAMPLERS.map((x) => x.name) },
  });
}

/**
 * A1111 `sampler_name` (+ optional `scheduler`) → canonical id for the model's kind. Canonical Easel ids are
 * accepted too (an Easel infotext names them).
 */
/** An A1111 schedule type by name, label or alias; E_INPUT_INVALID naming `scheduler` when there is none. */
export function a1111Schedule(name: string): { name: string; label: string } {
  const schedule = findSchedule(name);
  if (!schedule) {
    throw new EaselError("E_INPUT_INVALID", `Scheduler not found: "${name}".`, {
      param: "scheduler",
      details: { allowed: A1111_SCHEDULES.map((x) => x.name) },
    });
  }
  return schedule;
}

export function resolveA1111Sampler(samplerName: string, scheduleName: string | undefined, kind: ModelKind): A1111Resolved {
  let sampler = findSampler(samplerName);
  let schedule = scheduleName ? a1111Schedule(scheduleName) : undefined;
  if (!sampler) {
    const legacy = splitLegacy(samplerName) ?? (SCHEDULER_IDS.includes(samplerName) && kind === "vp" ? fromCanonical(samplerName) : undefined);
    if (legacy) {
      sampler = legacy[0];
      if (!schedule || schedule.name === "automatic") schedule = legacy[1];
    } else if (SCHEDULER_IDS.includes(samplerName)) {
      return { id: samplerName, samplerName, scheduleLabel: schedule?.label ?? "Automatic" };
    } else {
      throw notFound(samplerName, "sampler_name");
    }
  }
  const scheduleId = !schedule || schedule.name === "automatic" ? sampler.defaultSchedule : schedule.name;
  const scheduleLabel = findSchedule(scheduleId)?.label ?? "Automatic";
  let id: string;
  let exact: boolean;
  if (kind === "vp") {
    if (scheduleId === "karras") {
      id = sampler.vp.karras ?? sampler.vp.uniform;
      exact = sampler.vp.exact && sampler.vp.karras !== undefined;
    } else if (EVEN_SPACING.has(scheduleId)) {
      id = sampler.vp.uniform;
      exact = sampler.vp.exact;
    } else {
      // Exponential and the other spacings have no ε/v implementation here: Karras, the closest, runs instead.
      id = sampler.vp.karras ?? sampler.vp.uniform;
      exact = false;
    }
  } else {
    ({ id, exact } = sampler[kind]);
  }
  if (exact) return { id, samplerName: sampler.name, scheduleLabel };
  const model = { vp: "an ε/v-prediction", edm: "an EDM", flow: "a flow-matching" }[kind];
  return {
    id,
    samplerName: sampler.name,
    scheduleLabel,
    warning: {
      code: "W_SAMPLER_SUBSTITUTED",
      message: `sampler "${sampler.name}" with schedule "${scheduleLabel}" has no implementation for ${model} model; ${id}, its nearest equivalent, ran instead`,
      param: "sampler_name",
    },
  };
}

/** A1111's names for a canonical id (a model's default scheduler), or the id itself where A1111 has no name. */
export function a1111NamesOf(id: string | undefined): { samplerName: string; scheduleLabel: string } {
  if (id === undefined) return { samplerName: "Default", scheduleLabel: "Automatic" };
  const hit = fromCanonical(id);
  return hit ? { samplerName: hit[0].name, scheduleLabel: hit[1].label } : { samplerName: id, scheduleLabel: "Automatic" };
}

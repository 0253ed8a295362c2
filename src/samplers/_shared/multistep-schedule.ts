/**
 * The timestep/σ grid of UniPC and DEIS: the DPM-Solver multistep grid with each class's own final σ.
 */
import { EaselError } from "../../core/errors.ts";
import { bool, num, optNum, type SchedulerConfig } from "./config.ts";
import { sigmaToT } from "./schedules/betas.ts";
import { trainFromConfig } from "./schedules/discrete.ts";
import { f32, interpIndex, npLinspace, roundHalfEven } from "./schedules/numeric.ts";
import { exponentialSigmas, flowShift, karrasSigmas } from "./schedules/sigmas.ts";
import { checkSpacing, multistepTimesteps } from "./schedules/spacing.ts";

export interface Grid {
  timesteps: number[];
  /** n σ (float64) before the final σ is appended */
  sigmas: number[];
  /** which branch produced them: interpolated ("plain") or a ramp */
  kind: "plain" | "ramp" | "flow";
  trainSigma0: number;
}

export function multistepGrid(cfg: SchedulerConfig, steps: number): Grid {
  const T = num(cfg, "num_train_timesteps");
  const train = trainFromConfig(cfg);
  if (bool(cfg, "use_beta_sigmas")) throw new EaselError("E_NOT_SUPPORTED", "use_beta_sigmas is not supported.", { param: "use_beta_sigmas" });
  const timesteps = multistepTimesteps(checkSpacing(cfg.timestep_spacing), T, T, steps, num(cfg, "steps_offset"));
  const cfgMin = optNum(cfg, "sigma_min");
  const cfgMax = optNum(cfg, "sigma_max");
  const s = train.sigmas;
  if (bool(cfg, "use_karras_sigmas")) {
    const sigmas = karrasSigmas(steps, cfgMin ?? s[0], cfgMax ?? s[T - 1]);
    return { timesteps: sigmas.map((x) => roundHalfEven(sigmaToT(x, train.logSigmas))), sigmas, kind: "ramp", trainSigma0: s[0] };
  }
  if (bool(cfg, "use_exponential_sigmas")) {
    const sigmas = exponentialSigmas(steps, cfgMin ?? s[0], cfgMax ?? s[T - 1]);
    return { timesteps: sigmas.map((x) => Math.trunc(sigmaToT(x, train.logSigmas))), sigmas, kind: "ramp", trainSigma0: s[0] };
  }
  if (bool(cfg, "use_flow_sigmas")) {
    const shift = num(cfg, "flow_shift");
    const sigmas = npLinspace(1, 1 / T, steps + 1)
      .map((a) => flowShift(1 - a, shift))
      .reverse()
      .slice(0, -1);
    return { timesteps: sigmas.map((x) => Math.trunc(x * T)), sigmas, kind: "flow", trainSigma0: s[0] };
  }
  return { timesteps, sigmas: timesteps.map((t) => interpIndex(t, s)), kind: "plain", trainSigma0: s[0] };
}

export const toF32 = (v: number[]) => v.map(f32);

/**
 * Request prices. A model's price is `config.pricing.models[id] ?? config.pricing.default`, and
 *   cost = perImage * n * (width*height / referencePixels) * (steps / referenceSteps)
 * with steps defaulting to the model's own default. Costs are rounded to the nearest 0.001 credit (one
 * millicredit, the ledger's unit).
 */
import type { Config } from "../config/index.ts";
import type { GenerationRequest, ModelInfo } from "../core/types.ts";
import { CREDIT_SCALE } from "../storage/metadata-store.ts";

/** Cost in millicredits. */
export function priceMillicredits(config: Config, model: ModelInfo, req: GenerationRequest): number {
  const p = config.pricing.models[model.id] ?? config.pricing.default;
  const steps = req.steps ?? model.defaults.steps;
  const credits = p.perImage * req.n * ((req.width * req.height) / p.referencePixels) * (steps / p.referenceSteps);
  return Math.round(credits * CREDIT_SCALE);
}

export const toCredits = (milli: number): number => milli / CREDIT_SCALE;
/** Credits from a user (CLI, admin API) to millicredits, rounded to the ledger's unit. */
export const toMillicredits = (credits: number): number => Math.round(credits * CREDIT_SCALE);

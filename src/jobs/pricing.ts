/**
 * Request prices. A model's price is `config.pricing.models[id] ?? config.pricing.default`, and
 *   cost = perImage * n * (width*height / referencePixels) * (steps / referenceSteps)
 * with steps defaulting to the model's own default. Costs are rounded up to the next 0.001 credit (one
 * millicredit, the ledger's unit) and are never below `pricing.minimumPerImage * n`, so no request is free:
 * a metered key with no credits left is refused whatever it asks for.
 */
import type { Config } from "../config/index.ts";
import type { GenerationRequest, ModelInfo } from "../core/types.ts";
import { CREDIT_SCALE } from "../storage/metadata-store.ts";

/**
 * Rounds millicredits up, ignoring the last bits of floating-point error (0.1 * 3 = 0.30000000000000004 must
 * stay 300, not become 301).
 */
function ceilMillicredits(milli: number): number {
  return Math.ceil(milli * (1 - 1e-12));
}

/** Cost in millicredits: at least one millicredit per image. */
export function priceMillicredits(config: Config, model: ModelInfo, req: GenerationRequest): number {
  const p = config.pricing.models[model.id] ?? config.pricing.default;
  const steps = req.steps ?? model.defaults.steps;
  const credits = p.perImage * req.n * ((req.width * req.height) / p.referencePixels) * (steps / p.referenceSteps);
  const minimum = Math.max(1, ceilMillicredits(config.pricing.minimumPerImage * CREDIT_SCALE)) * req.n;
  return Math.max(ceilMillicredits(credits * CREDIT_SCALE), minimum);
}

export const toCredits = (milli: number): number => milli / CREDIT_SCALE;
/** Credits from a user (CLI, admin API) to millicredits, rounded to the ledger's unit. */
export const toMillicredits = (credits: number): number => Math.round(credits * CREDIT_SCALE);

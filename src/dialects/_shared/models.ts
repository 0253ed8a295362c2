/** Resolving a dialect's model name to an installed model, with an error that says how to install it. */
import { EaselError } from "../../core/errors.ts";
import type { ImageService } from "../../core/image-service.ts";
import type { ModelInfo } from "../../core/types.ts";

/**
 * OpenAI's image model names, which clients with a fixed model list send. The config's `models.defaultAliases`
 * maps them onto the default model unless a model is given one of them as its id or alias.
 */
export const OPENAI_MODEL_NAMES: readonly string[] = ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"];

/**
 * The first installed model among `names` (the client's own spelling first, so a configured alias wins, then
 * Easel's canonical ids). Throws E_MODEL_NOT_FOUND naming the model and how to install it.
 */
export function resolveModel(images: ImageService, names: string[], opts: { param: string; shown?: string }): ModelInfo {
  for (const n of names) {
    const m = images.findModel(n);
    if (m) return m;
  }
  throw modelNotInstalled(opts.shown ?? names[0], names.slice(1), opts.param);
}

export function modelNotInstalled(name: string, canonical: string[], param: string): EaselError {
  const as = canonical.length > 0 ? ` under the name "${canonical[0]}" (or give it "${name}" as an alias)` : "";
  return new EaselError(
    "E_MODEL_NOT_FOUND",
    `The model "${name}" is not installed on this server. Install it by putting its diffusers folder in the ` +
      `models directory${as}, or by mapping the name in the config's models.entries, then restart the server.`,
    { param, details: { model: name, candidates: canonical } },
  );
}

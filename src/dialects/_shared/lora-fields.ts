/**
 * LoRAs in a request, for every dialect: the extension field `loras: [{name, scale}]` (spread into each body schema
 * with the prompt fields) and A1111's prompt syntax `<lora:name:scale>` (`<lora:name>` is scale 1), which is taken
 * out of the prompt text. Names are files of the models directory's loras/ folder; both are checked here, before
 * admission, so a request naming a LoRA that is not installed is refused and nothing is charged.
 */
import { join } from "node:path";
import { z } from "zod";
import { configPaths } from "../../config/index.ts";
import { EaselError } from "../../core/errors.ts";
import type { GenerationRequest } from "../../core/types.ts";
import { checkLoraScale, resolveLora } from "../../models/components/lora.ts";
import type { DialectDeps } from "./dialect.ts";

/** At most this many LoRAs per request (each one merged into the weights costs a pipeline load per new set). */
export const MAX_LORAS = 8;

export const LORA_FIELDS = {
  loras: z
    .array(z.object({ name: z.string().min(1).max(128), scale: z.number().min(-8).max(8).default(1) }))
    .max(MAX_LORAS)
    .nullish()
    .describe("Easel: LoRAs from the server's loras folder and their scales (default 1), applied in order; `<lora:name:scale>` in the prompt does the same."),
};

export interface LoraFields {
  loras?: { name: string; scale?: number }[] | null;
}

// A1111's extra-networks syntax; `lyco` is the LyCORIS extension's spelling of the same tag.
const TAG_RE = /<(?:lora|lyco):([^:<>]+)(?::([^:<>]*))?(?::[^<>]*)?>/gi;

/** The prompt without its `<lora:...>` tags, and the LoRAs they name, in order. */
export function extractLoraTags(prompt: string): { prompt: string; loras: { name: string; scale: number }[] } {
  const loras: { name: string; scale: number }[] = [];
  const text = prompt.replace(TAG_RE, (_m, name: string, scale: string | undefined) => {
    const s = scale === undefined || scale.trim() === "" ? 1 : Number(scale);
    if (!Number.isFinite(s)) throw new EaselError("E_INPUT_INVALID", `<lora:${name}:${scale}>: the scale is not a number`, { param: "prompt" });
    loras.push({ name: name.trim(), scale: s });
    return " ";
  });
  return { prompt: loras.length > 0 ? text.replace(/\s+/g, " ").replace(/\s+([,.])/g, "$1").trim() : prompt, loras };
}

/** The models directory's LoRA folder. */
export const lorasDirOf = (deps: Pick<DialectDeps, "config">) => join(configPaths(deps.config).modelsDir, "loras");

/** The request with the body's `loras` and the prompt's tags applied, every name resolved in the LoRA folder. */
export function applyLoras(deps: Pick<DialectDeps, "config">, req: GenerationRequest, body: LoraFields): GenerationRequest {
  const tags = extractLoraTags(req.prompt);
  const loras = [...(body.loras ?? []).map((l) => ({ name: l.name, scale: l.scale ?? 1 })), ...tags.loras];
  if (loras.length === 0) return req;
  if (loras.length > MAX_LORAS) throw new EaselError("E_INPUT_INVALID", `at most ${MAX_LORAS} LoRAs per request, got ${loras.length}`, { param: "loras" });
  const dir = lorasDirOf(deps);
  for (const l of loras) {
    resolveLora(dir, l.name);
    checkLoraScale(l.scale);
  }
  return { ...req, prompt: tags.prompt, loras };
}

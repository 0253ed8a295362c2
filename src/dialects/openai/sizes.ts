/**
 * OpenAI `size` values on local models. Clients with a fixed model list (Open WebUI, n8n, LibreChat, Home Assistant)
 * offer only the sizes of OpenAI's own models, which a local model may not make well or at all. The rule:
 * - a model asked for by one of OpenAI's names (dall-e-3, gpt-image-1, ...: the client chose the size from OpenAI's
 *   list, not for this model) makes the size's aspect at its own pixel count (the model's default size's area);
 * - another model makes a size as asked when its limits accept it; one of OpenAI's sizes that it does not accept
 *   is made at the model's own pixel count in the same aspect, never refused;
 * - any other size outside the model's limits is refused by the limits check with the allowed range.
 * Each side is a multiple of the model's size multiple; a size that changes carries W_SIZE_MAPPED, and the answer's
 * `size` is the size made. Models served by an upstream provider get the size as asked (the provider's table decides).
 */
import { requestBytes } from "../../core/limits.ts";
import type { ModelInfo, Warning } from "../../core/types.ts";
import { OPENAI_MODEL_NAMES } from "../_shared/models.ts";

/** Every size OpenAI's image models accept (dall-e-2 squares, dall-e-3's wide and tall, gpt-image's 3:2 and 2:3). */
export const OPENAI_SIZES: ReadonlySet<string> = new Set(["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536"]);

export interface Size {
  width: number;
  height: number;
}

/** Whether the model's limits (sides, multiple, memory for n images) accept the size. */
function accepts(model: ModelInfo, s: Size, n: number): boolean {
  const l = model.limits;
  for (const v of [s.width, s.height]) if (v < l.minSize || v > l.maxSize || v % l.sizeMultiple !== 0) return false;
  return !l.memory || requestBytes(l.memory, s.width, s.height, n) <= l.memory.machineBytes;
}

/** The aspect width:height at the model's own pixel count, sides rounded to its size multiple within its limits. */
export function nativeSizeAt(model: ModelInfo, width: number, height: number): Size {
  const area = model.defaults.width * model.defaults.height;
  const aspect = width / height;
  const m = model.limits.sizeMultiple;
  const side = (v: number) => Math.min(model.limits.maxSize, Math.max(model.limits.minSize, m, Math.round(v / m) * m));
  return { width: side(Math.sqrt(area * aspect)), height: side(Math.sqrt(area / aspect)) };
}

export function isOpenAiModelName(name: string | null | undefined): boolean {
  return name != null && OPENAI_MODEL_NAMES.includes(name.toLowerCase());
}

/**
 * The size to make for a requested one (see the rule above). `asked` is what the client sent ("WxH"), or for an edit
 * without a size the input image's size; `openAiName` whether the model was named by one of OpenAI's names.
 */
export function chooseSize(model: ModelInfo, asked: Size, o: { openAiName: boolean; n: number; from: string }): { size: Size; warning?: Warning } {
  const key = `${asked.width}x${asked.height}`;
  // An upstream provider checks sizes by its own table (docs/gateway.md): OpenAI's own sizes reach it as asked.
  if (model.backend !== "local") return { size: asked };
  let size: Size;
  if (o.openAiName) size = nativeSizeAt(model, asked.width, asked.height);
  else if (accepts(model, asked, o.n) || !(OPENAI_SIZES.has(key) || o.from === "the input image")) return { size: asked };
  else size = nativeSizeAt(model, asked.width, asked.height);
  if (size.width === asked.width && size.height === asked.height) return { size };
  return {
    size,
    warning: {
      code: "W_SIZE_MAPPED",
      param: "size",
      message: `${o.from} ${key} was made as ${size.width}x${size.height} by the model "${model.id}" (the same aspect at its own resolution)`,
    },
  };
}

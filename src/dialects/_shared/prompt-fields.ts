/**
 * The prompt features of Playground's page (specs/001) as extension fields every dialect takes under the same names:
 * `prompt_filter` (a style preset, GET /v1/styles), `expand_prompt`, `verify_prompt_safety`, `prompt_rejection_topics`.
 * A dialect spreads PROMPT_FIELDS into its body schema and runs preparePrompt between translating the body and
 * handing the request to the job service, so a refusal comes before admission and nothing is charged.
 */
import { z } from "zod";
import { createPromptExpander, createPromptService, type PreparedRequest, type PromptOptions, type PromptService } from "../../prompts/index.ts";
import { EaselError } from "../../core/errors.ts";
import type { GenerationRequest } from "../../core/types.ts";
import type { DialectDeps } from "./dialect.ts";
import { applyLoras, LORA_FIELDS, type LoraFields } from "./lora-fields.ts";

/** The four prompt fields of Playground's page (without LoRAs: AUTOMATIC1111 takes those from its prompt tags). */
export const PROMPT_CHECK_FIELDS = {
  prompt_filter: z.string().min(1).max(64).nullish().describe("Easel: a style preset (GET /v1/styles) that wraps the prompt and adds a negative prompt."),
  expand_prompt: z.boolean().nullish().describe("Easel: rewrite the prompt with the configured language model (promptExpansion)."),
  verify_prompt_safety: z.boolean().nullish().describe("Easel: refuse prompts in the unsafe categories (PROMPT_UNSAFE)."),
  prompt_rejection_topics: z.array(z.string().min(1).max(200)).max(100).nullish().describe("Easel: refuse prompts that reference one of these topics (PROMPT_UNSAFE)."),
};

export const PROMPT_FIELDS = {
  ...PROMPT_CHECK_FIELDS,
  ...LORA_FIELDS,
};

/** `safety_check` (Monica's field, spec 000) for the dialects that do not have it: the image safety checker. */
export const SAFETY_FIELDS = {
  safety_check: z.boolean().nullish().describe("Easel: run the model's image safety checker; flagged images come back black (or the request fails, by configuration)."),
};

export interface PromptFields extends LoraFields {
  prompt_filter?: string | null;
  expand_prompt?: boolean | null;
  verify_prompt_safety?: boolean | null;
  prompt_rejection_topics?: string[] | null;
  safety_check?: boolean | null;
}

export function promptOptions(body: PromptFields): PromptOptions {
  return {
    ...(body.prompt_filter != null ? { style: body.prompt_filter } : {}),
    ...(body.expand_prompt ? { expand: true } : {}),
    ...(body.verify_prompt_safety ? { verifySafety: true } : {}),
    ...(body.prompt_rejection_topics && body.prompt_rejection_topics.length > 0 ? { rejectionTopics: body.prompt_rejection_topics } : {}),
  };
}

/** Deps built without a prompt service (tests that compose dialects by hand) get one from their config, once. */
const fallback = new WeakMap<object, PromptService>();

export function promptsOf(deps: DialectDeps): PromptService {
  if (deps.prompts) return deps.prompts;
  let s = fallback.get(deps.config);
  if (!s) {
    s = createPromptService({ config: deps.config, expander: createPromptExpander(deps.config) });
    fallback.set(deps.config, s);
  }
  return s;
}

/**
 * The request with the body's prompt features applied (or refused with E_PROMPT_UNSAFE, before admission), and
 * `safety_check` carried over: only local models run a safety checker, so an upstream one is refused here.
 */
export async function preparePrompt(deps: DialectDeps, req: GenerationRequest, body: PromptFields, signal?: AbortSignal): Promise<PreparedRequest> {
  const safetyCheck = body.safety_check === true || req.safetyCheck === true;
  if (safetyCheck) {
    const model = deps.images.findModel(req.model);
    if (model && model.backend !== "local") {
      throw new EaselError("E_NOT_SUPPORTED", `safety_check runs Easel's own image safety checker, on local models only; "${model.id}" is served by ${model.backend}`, {
        param: "safety_check",
      });
    }
    // Known before admission for a local checkpoint described by the engine (the worker checks again when it runs).
    if (model && model.limits.safetyChecker === false && !deps.config.safety.checkerDir) {
      throw new EaselError(
        "E_NOT_SUPPORTED",
        `safety_check: model "${model.id}" has no safety checker (no safety_checker component) and no safety.checkerDir is configured`,
        { param: "safety_check" },
      );
    }
  }
  // LoRAs (body field and <lora:...> tags) come first, so the prompt service sees the prompt without its tags.
  const prepared = await promptsOf(deps).prepare(applyLoras(deps, req, body), promptOptions(body), signal);
  return safetyCheck ? { ...prepared, req: { ...prepared.req, safetyCheck: true } } : prepared;
}

/**
 * AUTOMATIC1111's `styles: [name, ...]`, with the web UI's rule (modules/styles.py): a style whose text has `{prompt}`
 * puts the prompt there, another is appended after ", "; the negative prompt likewise; styles apply in order. Names
 * are the preset ids of GET /v1/styles (also GET /sdapi/v1/prompt-styles); an unknown name is skipped, as the web UI
 * does, with a W_PARAM_IGNORED warning saying so.
 */
export function applyNamedStyles(deps: DialectDeps, req: GenerationRequest, names: readonly string[]): GenerationRequest {
  if (names.length === 0) return req;
  const styles = promptsOf(deps).styles();
  const merge = (text: string, into: string) => (text.includes("{prompt}") ? text.split("{prompt}").join(into) : into ? `${into}, ${text}` : text);
  let prompt = req.prompt;
  let negative = req.negativePrompt ?? "";
  const warnings = [...(req.warnings ?? [])];
  for (const name of names) {
    const style = styles.find((s) => s.id === name);
    if (!style) {
      warnings.push({ code: "W_PARAM_IGNORED", param: "styles", message: `style "${name}" is not on this server (GET /sdapi/v1/prompt-styles lists them); skipped` });
      continue;
    }
    prompt = merge(style.prompt, prompt);
    if (style.negativePrompt) negative = merge(style.negativePrompt, negative);
  }
  return { ...req, prompt, ...(negative ? { negativePrompt: negative } : {}), ...(warnings.length > 0 ? { warnings } : {}) };
}

/** `x-easel-revised-prompt` (JSON string, non-ASCII escaped) when the prompt the model got differs from the client's. */
export function promptHeaders(p: PreparedRequest, original: string): Record<string, string> {
  if (p.revisedPrompt === original) return {};
  const json = JSON.stringify(p.revisedPrompt).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return { "x-easel-revised-prompt": json, ...(p.style ? { "x-easel-style": p.style } : {}) };
}

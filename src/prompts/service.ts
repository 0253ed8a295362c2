/**
 * What dialects ask of the prompt features before a request is admitted: reject prompts that reference a refused
 * topic or an unsafe category, expand the prompt through a language model, wrap it in a style preset. A refusal here
 * happens before the job service sees the request, so nothing is recorded, reserved or charged.
 */
import type { Config } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import type { GenerationRequest } from "../core/types.ts";
import { BUILTIN_SAFETY_CATEGORIES, type SafetyCategory } from "./categories.ts";
import { expansionNotConfigured, type PromptExpander } from "./expansion.ts";
import { findRejectedTopic, promptUnsafe, type TextEmbedder } from "./rejection.ts";
import { applyStyle, createStyleCatalog, type StyleCatalog, type StylePreset } from "./styles.ts";

/** The prompt features one request asks for (Playground's field names, which every dialect takes as extensions). */
export interface PromptOptions {
  /** `prompt_filter`: a style preset id. */
  style?: string;
  /** `expand_prompt`. */
  expand?: boolean;
  /** `verify_prompt_safety`. */
  verifySafety?: boolean;
  /** `prompt_rejection_topics`. */
  rejectionTopics?: readonly string[];
}

export interface PreparedRequest {
  req: GenerationRequest;
  /** The prompt the model is given (after expansion and the style), reported back to the client. */
  revisedPrompt: string;
  /** What the language model answered, when the prompt was expanded. */
  expandedPrompt?: string;
  style?: string;
}

export interface PromptService {
  styles(): StylePreset[];
  /** Checks and rewrites the request's prompt; throws E_PROMPT_UNSAFE, E_INPUT_INVALID (unknown style), E_NOT_SUPPORTED. */
  prepare(req: GenerationRequest, opts: PromptOptions, signal?: AbortSignal): Promise<PreparedRequest>;
  close(): Promise<void>;
}

export interface PromptServiceDeps {
  config: Config;
  /** Unset: expand_prompt answers how to configure a provider. */
  expander?: PromptExpander;
  /** The model's pooled text embeddings, where the process runs the model; undefined: lexical matching only. */
  embedderFor?: (model: string) => TextEmbedder | undefined;
}

export function createPromptService(deps: PromptServiceDeps): PromptService {
  const settings = deps.config.prompts;
  const catalog: StyleCatalog = createStyleCatalog(settings.styles);
  const categories: readonly SafetyCategory[] = settings.safetyCategories ?? BUILTIN_SAFETY_CATEGORIES;

  return {
    styles: () => catalog.list(),

    async prepare(req, opts, signal) {
      let style: StylePreset | undefined;
      if (opts.style !== undefined) {
        style = catalog.get(opts.style);
        if (!style) {
          throw new EaselError("E_INPUT_INVALID", `prompt_filter "${opts.style}" is not a style (GET /v1/styles lists them)`, {
            param: "prompt_filter",
            details: { allowed: catalog.list().map((s) => s.id) },
          });
        }
      }
      if (opts.expand && !deps.expander) throw expansionNotConfigured();
      const check = { topics: opts.rejectionTopics, verifySafety: opts.verifySafety };
      const rejection = { categories, semanticThreshold: settings.semanticThreshold, embed: deps.embedderFor?.(req.model) };
      const hit = await findRejectedTopic(req.prompt, check, rejection);
      if (hit) throw promptUnsafe(hit);
      let prompt = req.prompt;
      let expandedPrompt: string | undefined;
      if (opts.expand && deps.expander) {
        expandedPrompt = await deps.expander.expand(req.prompt, signal);
        // The language model's words are checked like the client's.
        const again = await findRejectedTopic(expandedPrompt, check, rejection);
        if (again) throw promptUnsafe(again, "expanded prompt");
        prompt = expandedPrompt;
      }
      let negativePrompt = req.negativePrompt;
      if (style) ({ prompt, negativePrompt } = applyStyle(style, prompt, negativePrompt));
      return {
        req: { ...req, prompt, ...(negativePrompt ? { negativePrompt } : {}) },
        revisedPrompt: prompt,
        ...(expandedPrompt !== undefined ? { expandedPrompt } : {}),
        ...(style ? { style: style.id } : {}),
      };
    },

    close: async () => {
      await deps.expander?.close();
    },
  };
}

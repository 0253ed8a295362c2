/** Prompt features shared by every dialect: style presets, topic and safety rejection, expansion. */
export { BUILTIN_SAFETY_CATEGORIES, type SafetyCategory } from "./categories.ts";
export { createPromptExpander, expansionNotConfigured, type PromptExpander } from "./expansion.ts";
export { cosine, findRejectedTopic, type TextEmbedder, type TopicHit } from "./rejection.ts";
export { createPromptService, type PreparedRequest, type PromptOptions, type PromptService } from "./service.ts";
export { applyStyle, BUILTIN_STYLES, createStyleCatalog, type StylePreset } from "./styles.ts";

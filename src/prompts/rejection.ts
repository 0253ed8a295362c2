/**
 * Prompt rejection (`prompt_rejection_topics`, `verify_prompt_safety`): a prompt that references a topic is refused
 * with E_PROMPT_UNSAFE naming the topic. Two signals: word and phrase matching over normalised text (topics.ts), which
 * carries the weight, and, where the model's CLIP text encoder is at hand and config.prompts.semanticThreshold is set,
 * the cosine similarity between the prompt's and the topic's text embeddings. docs/prompts.md says what each catches.
 */
import { EaselError } from "../core/errors.ts";
import type { SafetyCategory } from "./categories.ts";
import { normalizeWords } from "./normalize.ts";
import { type CompiledTopic, compileTopic, findTerm } from "./topics.ts";

/** Pooled text embeddings, one per text, from the model's text encoder. */
export type TextEmbedder = (texts: string[]) => Promise<Float32Array[]>;

export interface TopicHit {
  /** The client's topic, or the safety category's id. */
  topic: string;
  /** "topic" for prompt_rejection_topics, "safety" for verify_prompt_safety. */
  source: "topic" | "safety";
  method: "lexical" | "semantic";
  /** The term that matched (lexical) or the similarity (semantic). */
  term?: string;
  similarity?: number;
}

export interface RejectionCheck {
  topics?: readonly string[];
  verifySafety?: boolean;
}

export interface RejectionSettings {
  categories: readonly SafetyCategory[];
  semanticThreshold?: number;
  embed?: TextEmbedder;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** The first topic the prompt references, or undefined. Lexical first (cheap, no model); then semantic where set up. */
/** Compiled categories per category list: the list is fixed per server, so its terms are stemmed once. */
const compiledCategories = new WeakMap<readonly SafetyCategory[], CompiledTopic[]>();

function categoriesOf(list: readonly SafetyCategory[]): CompiledTopic[] {
  let c = compiledCategories.get(list);
  if (!c) {
    c = list.map((x) => compileTopic(x.id, x.terms));
    compiledCategories.set(list, c);
  }
  return c;
}

export async function findRejectedTopic(prompt: string, check: RejectionCheck, s: RejectionSettings): Promise<TopicHit | undefined> {
  const targets: { topic: CompiledTopic; source: TopicHit["source"]; text: string }[] = [];
  for (const t of check.topics ?? []) targets.push({ topic: compileTopic(t, [t]), source: "topic", text: t });
  if (check.verifySafety) {
    const compiled = categoriesOf(s.categories);
    for (const [i, c] of s.categories.entries()) targets.push({ topic: compiled[i], source: "safety", text: c.description });
  }
  if (targets.length === 0) return undefined;
  const words = normalizeWords(prompt);
  for (const t of targets) {
    const term = findTerm(words, t.topic);
    if (term !== undefined) return { topic: t.topic.label, source: t.source, method: "lexical", term };
  }
  if (s.embed && s.semanticThreshold !== undefined) {
    const [p, ...rest] = await s.embed([prompt, ...targets.map((t) => t.text)]);
    for (const [i, t] of targets.entries()) {
      const similarity = cosine(p, rest[i]);
      if (similarity >= s.semanticThreshold) return { topic: t.topic.label, source: t.source, method: "semantic", similarity };
    }
  }
  return undefined;
}

/** The client's error for a hit: PROMPT_UNSAFE naming the topic and the field that asked for the check. */
export function promptUnsafe(hit: TopicHit, where: "prompt" | "expanded prompt" = "prompt"): EaselError {
  const what = hit.source === "topic" ? `the rejected topic "${hit.topic}"` : `the unsafe category "${hit.topic}"`;
  const how = hit.method === "lexical" ? ` (matched "${hit.term}")` : ` (similarity ${hit.similarity?.toFixed(3)})`;
  return new EaselError("E_PROMPT_UNSAFE", `The ${where} references ${what}${how}.`, {
    param: hit.source === "topic" ? "prompt_rejection_topics" : "verify_prompt_safety",
    details: { topic: hit.topic, method: hit.method, ...(hit.term ? { term: hit.term } : {}), ...(hit.similarity !== undefined ? { similarity: hit.similarity } : {}) },
  });
}

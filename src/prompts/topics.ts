/**
 * Lexical topic matching over normalised words (normalize.ts). A topic is a label and the terms that name it (a
 * client's `prompt_rejection_topics` entry is its own single term; the built-in safety categories list many). A
 * term matches when its stems appear in the prompt in order and next to each other ("brand logos" in "two brand
 * logos"), or when the words of a term written together or apart still spell the same stem ("brandlogos",
 * "hand gun" for "handgun").
 */
import { normalizeWords, stem, type Word } from "./normalize.ts";

interface CompiledTerm {
  term: string;
  stems: string[];
  /** Stem of the term's words written as one word. */
  joined: string;
}

export interface CompiledTopic {
  label: string;
  terms: CompiledTerm[];
}

/** The longest run of prompt words tried as one written-together word. */
const MAX_JOIN = 3;

export function compileTopic(label: string, terms: readonly string[]): CompiledTopic {
  const compiled: CompiledTerm[] = [];
  for (const term of terms) {
    const words = normalizeWords(term);
    if (words.length === 0) continue;
    compiled.push({ term, stems: words.map((w) => w.stem), joined: stem(words.map((w) => w.plain).join("")) });
  }
  return { label, terms: compiled };
}

function termAt(words: readonly Word[], i: number, t: CompiledTerm): boolean {
  if (i + t.stems.length <= words.length && t.stems.every((s, k) => words[i + k].stem === s)) return true;
  let plain = "";
  for (let k = 0; k < MAX_JOIN && i + k < words.length; k++) {
    plain += words[i + k].plain;
    if (stem(plain) === t.joined) return true;
  }
  return false;
}

/** The first term of `topic` found in the prompt's words, or undefined. */
export function findTerm(words: readonly Word[], topic: CompiledTopic): string | undefined {
  for (const t of topic.terms) {
    for (let i = 0; i < words.length; i++) if (termAt(words, i, t)) return t.term;
  }
  return undefined;
}

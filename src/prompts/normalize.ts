/**
 * Text normalisation for topic matching: what makes "G4mbling", "gamble", "CASINOS" and "brand-logos" compare
 * equal to the words a topic lists. Steps: Unicode compatibility form without accents, lower case, leetspeak read
 * back inside words that mix letters with digits or symbols ("g4mbl1ng", "$lots"), words split at any separator
 * ("brand_logos", "brand.logos"), spaced-out letters joined ("g a m b l e"), a short stop-word list dropped, and
 * every word reduced to its Porter stem (plurals and inflections: "logos" -> "logo", "gambling" -> "gambl").
 */
import { stemmer } from "stemmer";

/** Leetspeak letters, read back only inside a word that also has a letter (so "1024" and "3 cats" stay numbers). */
const LEET: Record<string, string> = {
  "0": "o",
  "1": "i",
  "3": "e",
  "4": "a",
  "5": "s",
  "7": "t",
  "8": "b",
  "9": "g",
  "@": "a",
  $: "s",
  "!": "i",
  "|": "l",
  "+": "t",
};

/** Words that carry no topic. */
const STOP = new Set(["a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "with", "for", "by", "from", "is", "are", "it", "its", "as", "this", "that"]);

function readLeet(word: string): string {
  // Sentence punctuation around a word is not part of it ("casino!").
  const w = word.replace(/^[!|+]+|[!|+]+$/g, "");
  if (!/[a-z]/.test(w) || !/[0-9@$!|+]/.test(w)) return w.replace(/[@$!|+]/g, "");
  return [...w].map((c) => LEET[c] ?? c).join("");
}

/** Lower-case words of `text` with leetspeak read back, before stemming (stop words kept). */
export function plainWords(text: string): string[] {
  const folded = text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
  const raw = folded.match(/[\p{L}\p{N}@$!|+]+/gu) ?? [];
  const words = raw.map(readLeet).filter((w) => w.length > 0);
  // "g a m b l e": a run of three or more single letters is one word spelled out.
  const out: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length >= 3) out.push(run.join(""));
    else out.push(...run);
    run = [];
  };
  for (const w of words) {
    if (w.length === 1 && /\p{L}/u.test(w)) run.push(w);
    else {
      flush();
      out.push(w);
    }
  }
  flush();
  return out;
}

/** One normalised word: the plain form (for joins) and its stem (for comparison). */
export interface Word {
  plain: string;
  stem: string;
}

/** The words of `text` that can carry a topic, normalised and stemmed. */
export function normalizeWords(text: string): Word[] {
  return plainWords(text)
    .filter((w) => !STOP.has(w))
    .map((plain) => ({ plain, stem: stem(plain) }));
}

/** Stems by word, kept for the process (bounded): the same words recur across prompts, terms and joins. */
const stems = new Map<string, string>();
const STEM_CACHE_MAX = 50_000;

export function stem(word: string): string {
  let s = stems.get(word);
  if (s === undefined) {
    s = stemmer(word);
    if (stems.size >= STEM_CACHE_MAX) stems.clear();
    stems.set(word, s);
  }
  return s;
}

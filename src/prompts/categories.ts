/**
 * The categories `verify_prompt_safety: true` checks a prompt against, each with the terms that name it. Terms are
 * matched like client topics (normalised, stemmed, phrase-aware: topics.ts). The list is documented in
 * docs/prompts.md and replaced as a whole by config.prompts.safetyCategories.
 */
export interface SafetyCategory {
  id: string;
  description: string;
  terms: string[];
}

export const BUILTIN_SAFETY_CATEGORIES: readonly SafetyCategory[] = [
  {
    id: "sexual",
    description: "sexual or explicit content, nudity",
    terms: ["nude", "naked", "nudity", "nsfw", "porn", "pornography", "pornographic", "explicit sex", "sex scene", "sexual", "erotic", "hentai", "topless", "genitals", "lingerie model", "striptease", "stripper", "fetish", "xxx"],
  },
  {
    id: "minors",
    description: "sexualised depictions of minors",
    terms: ["child porn", "underage sex", "sexy child", "sexy kid", "lolicon", "shotacon", "loli"],
  },
  {
    id: "violence",
    description: "graphic violence and gore",
    terms: ["gore", "gory", "dismembered", "dismemberment", "decapitated", "decapitation", "beheading", "mutilated", "mutilation", "disembowel", "massacre", "bloodbath", "torture", "corpse pile", "mass shooting", "execution video", "snuff"],
  },
  {
    id: "self-harm",
    description: "suicide and self-harm",
    terms: ["suicide", "self harm", "self-harm", "slit wrists", "cutting myself", "hanging myself", "kill myself", "overdose"],
  },
  {
    id: "hate",
    description: "hate symbols and extremist propaganda",
    terms: ["swastika", "nazi propaganda", "kkk", "ku klux klan", "white power", "white supremacy", "isis flag", "ethnic cleansing", "genocide propaganda"],
  },
  {
    id: "weapons-terror",
    description: "weapon making and terrorism",
    terms: ["bomb making", "how to make a bomb", "pipe bomb", "ied", "terrorist attack", "suicide bomber", "car bomb", "school shooting", "chemical weapon", "bioweapon"],
  },
  {
    id: "drugs",
    description: "illegal drug use and production",
    terms: ["cocaine", "heroin", "methamphetamine", "crystal meth", "meth lab", "snorting", "drug injection", "fentanyl", "crack pipe"],
  },
];

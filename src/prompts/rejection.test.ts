/**
 * Prompt rejection: the normaliser and the phrase matcher on their own, then precision and recall of the whole lexical
 * check on the project's labelled set (fixtures/labelled-topics.ts), and the semantic signal with an embedder whose
 * vectors the test controls.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BUILTIN_SAFETY_CATEGORIES } from "./categories.ts";
import { LABELLED_TOPICS } from "./fixtures/labelled-topics.ts";
import { normalizeWords, plainWords } from "./normalize.ts";
import { cosine, findRejectedTopic, promptUnsafe } from "./rejection.ts";
import { compileTopic, findTerm } from "./topics.ts";

const settings = { categories: BUILTIN_SAFETY_CATEGORIES };

test("the normaliser folds case, accents, separators, leetspeak and spelled-out letters; numbers stay numbers", () => {
  assert.deepEqual(plainWords("G4MBL1NG-Night_at the Café!"), ["gambling", "night", "at", "the", "cafe"]);
  assert.deepEqual(plainWords("$lots and sw@stika"), ["slots", "and", "swastika"]);
  assert.deepEqual(plainWords("3 cats, 1024 px"), ["3", "cats", "1024", "px"]);
  assert.deepEqual(plainWords("g a m b l e now"), ["gamble", "now"]);
  assert.deepEqual(
    normalizeWords("the brand logos").map((w) => w.stem),
    ["brand", "logo"],
  );
});

test("terms match as phrases in order, written together or apart, and never inside another word", () => {
  const logos = compileTopic("brand logos", ["brand logos"]);
  assert.equal(findTerm(normalizeWords("a wall of Brand-Logos"), logos), "brand logos");
  assert.equal(findTerm(normalizeWords("brandlogos everywhere"), logos), "brand logos");
  assert.equal(findTerm(normalizeWords("a logo of a brand"), logos), undefined);
  assert.equal(findTerm(normalizeWords("a brand new logo"), logos), undefined);
  const gun = compileTopic("handgun", ["handgun"]);
  assert.equal(findTerm(normalizeWords("a hand gun"), gun), "handgun");
  assert.equal(findTerm(normalizeWords("a handgunner"), gun), undefined);
  const gamble = compileTopic("gambling", ["gambling"]);
  assert.equal(findTerm(normalizeWords("they gamble"), gamble), "gambling");
  assert.equal(findTerm(normalizeWords("gamboge paint"), gamble), undefined);
});

test("precision and recall of the lexical check on the labelled set", async () => {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const misses: string[] = [];
  for (const c of LABELLED_TOPICS) {
    const hit = await findRejectedTopic(c.prompt, { topics: c.topics, verifySafety: c.verifySafety }, settings);
    if (hit && c.refuse) tp++;
    else if (hit && !c.refuse) {
      fp++;
      misses.push(`false positive: ${c.prompt} (${hit.topic}: ${hit.term})`);
    } else if (!hit && c.refuse) {
      fn++;
      misses.push(`false negative: ${c.prompt}`);
    }
  }
  const precision = tp / (tp + fp);
  const recall = tp / (tp + fn);
  console.log(`lexical rejection on ${LABELLED_TOPICS.length} labelled prompts: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)} (tp ${tp}, fp ${fp}, fn ${fn})`);
  for (const m of misses) console.log(`  ${m}`);
  // The measured figures (docs/prompts.md): a change that loses a spelling or a phrase rule shows here.
  assert.ok(precision >= 0.9, `precision ${precision}`);
  assert.ok(recall >= 0.8, `recall ${recall}`);
});

test("the semantic signal refuses at or above the threshold only, and only after the words found nothing", async () => {
  // A stand-in embedder with vectors chosen by the test: the prompt is at cosine 0.8 from "gambling" (float32 rounding
  // puts it a hair either side, so the thresholds bracket it).
  const vectors: Record<string, Float32Array> = {
    "a casino floor with roulette tables": Float32Array.from([0.8, 0.6]),
    gambling: Float32Array.from([1, 0]),
  };
  const embed = async (texts: string[]) => texts.map((t) => vectors[t] ?? Float32Array.from([0, 1]));
  assert.ok(Math.abs(cosine(vectors.gambling, vectors["a casino floor with roulette tables"]) - 0.8) < 1e-6);
  const check = { topics: ["gambling"] };
  const at = await findRejectedTopic("a casino floor with roulette tables", check, { ...settings, embed, semanticThreshold: 0.79 });
  assert.equal(at?.method, "semantic");
  assert.ok(Math.abs((at?.similarity ?? 0) - 0.8) < 1e-6);
  assert.equal(await findRejectedTopic("a casino floor with roulette tables", check, { ...settings, embed, semanticThreshold: 0.81 }), undefined);
  // Without a threshold the embedder is never asked.
  assert.equal(await findRejectedTopic("a casino floor with roulette tables", check, { ...settings, embed: async () => assert.fail("asked") }), undefined);
  const lexical = await findRejectedTopic("gambling night", check, { ...settings, embed: async () => assert.fail("asked"), semanticThreshold: 0.5 });
  assert.equal(lexical?.method, "lexical");
});

test("a hit becomes PROMPT_UNSAFE naming the topic and the field that asked for the check", async () => {
  const hit = await findRejectedTopic("poker and GAMBLING", { topics: ["sports", "gambling"] }, settings);
  const e = promptUnsafe(hit!);
  assert.equal(e.code, "E_PROMPT_UNSAFE");
  assert.equal(e.status, 400);
  assert.equal(e.param, "prompt_rejection_topics");
  assert.match(e.message, /"gambling"/);
  const unsafe = await findRejectedTopic("a nude statue", { verifySafety: true }, settings);
  assert.equal(promptUnsafe(unsafe!).param, "verify_prompt_safety");
  assert.equal(unsafe?.topic, "sexual");
});

/**
 * The semantic signal of prompt rejection measured on the labelled set (fixtures/labelled-topics.ts) with the CLIP text
 * encoders Easel actually runs: the built-in easel-shapes model's (trained on a shapes-and-colours vocabulary) and
 * the micro sd15 test checkpoint's (random weights). For each prompt the highest cosine similarity to its topics (or to
 * the safety categories' descriptions) is computed, every threshold between observed values is tried together with the
 * lexical matcher, and the best one is reported with its precision and recall (docs/prompts.md quotes these figures).
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../checkpoint/checkpoint.ts";
import { Engine } from "../engine/engine.ts";
import { loadTextEmbedder } from "../models/pipeline/text-embedding.ts";
import { BUILTIN_SAFETY_CATEGORIES } from "./categories.ts";
import { LABELLED_TOPICS } from "./fixtures/labelled-topics.ts";
import { cosine, findRejectedTopic } from "./rejection.ts";

const cache = mkdtempSync(join(tmpdir(), "easel-semantic-"));
process.on("exit", () => rmSync(cache, { recursive: true, force: true }));
const rt = { executionProvider: "cpu" as const, intraOpThreads: 1, cacheDir: cache };

interface Scored {
  refuse: boolean;
  lexical: boolean;
  similarity: number;
}

async function score(modelDir: string): Promise<Scored[]> {
  const embedder = await loadTextEmbedder(loadCheckpoint(modelDir), rt);
  try {
    const out: Scored[] = [];
    for (const c of LABELLED_TOPICS) {
      const lexical = (await findRejectedTopic(c.prompt, { topics: c.topics, verifySafety: c.verifySafety }, { categories: BUILTIN_SAFETY_CATEGORIES })) !== undefined;
      const targets = [...c.topics, ...(c.verifySafety ? BUILTIN_SAFETY_CATEGORIES.map((x) => x.description) : [])];
      const [p, ...t] = await embedder.embed([c.prompt, ...targets]);
      out.push({ refuse: c.refuse, lexical, similarity: Math.max(...t.map((v) => cosine(p, v))) });
    }
    return out;
  } finally {
    await embedder.release();
  }
}

function pr(rows: Scored[], threshold: number): { precision: number; recall: number; f1: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const r of rows) {
    const hit = r.lexical || r.similarity >= threshold;
    if (hit && r.refuse) tp++;
    else if (hit) fp++;
    else if (r.refuse) fn++;
  }
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = tp / (tp + fn);
  return { precision, recall, f1: (2 * precision * recall) / (precision + recall) };
}

/** The threshold (one of the observed similarities, or above all of them = off) with the best F1, lowest on ties. */
function calibrate(rows: Scored[]): { threshold: number; precision: number; recall: number; f1: number } {
  const candidates = [...new Set(rows.map((r) => r.similarity)), Number.POSITIVE_INFINITY].sort((a, b) => a - b);
  let best = { threshold: Number.POSITIVE_INFINITY, ...pr(rows, Number.POSITIVE_INFINITY) };
  for (const t of candidates) {
    const m = pr(rows, t);
    if (m.f1 > best.f1 + 1e-12) best = { threshold: t, ...m };
  }
  return best;
}

for (const [name, dir] of [
  ["easel-shapes", resolve("models/easel-shapes")],
  ["micro sd15 (random weights)", resolve("test/fixtures/models/sd15")],
] as const) {
  test(`semantic similarity with ${name}'s CLIP text encoder, calibrated on the labelled set`, async () => {
    const rows = await score(dir);
    const lexical = pr(rows, Number.POSITIVE_INFINITY);
    const best = calibrate(rows);
    const refused = rows.filter((r) => r.refuse).map((r) => r.similarity);
    const allowed = rows.filter((r) => !r.refuse).map((r) => r.similarity);
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    console.log(
      `${name}: mean similarity refused ${mean(refused).toFixed(3)} vs allowed ${mean(allowed).toFixed(3)}; lexical only P ${lexical.precision.toFixed(3)} R ${lexical.recall.toFixed(3)}; ` +
        `best threshold ${best.threshold === Number.POSITIVE_INFINITY ? "none (off)" : best.threshold.toFixed(3)}: P ${best.precision.toFixed(3)} R ${best.recall.toFixed(3)} F1 ${best.f1.toFixed(3)}`,
    );
    // Calibration never does worse than the words alone on the set it was chosen on, and every similarity is a cosine.
    assert.ok(best.f1 >= lexical.f1);
    assert.ok(rows.every((r) => r.similarity >= -1 - 1e-6 && r.similarity <= 1 + 1e-6));
  });
}

test("the engine's worker gives the same embeddings as the model loaded here; a text is at similarity 1 with itself", async () => {
  const engine = new Engine(rt);
  try {
    const dir = resolve("models/easel-shapes");
    const [a, b, c] = await engine.embedText(dir, ["a red circle", "a red circle", "two blue squares"]);
    assert.ok(Math.abs(cosine(a, b) - 1) < 1e-6);
    assert.ok(cosine(a, c) < 1 - 1e-4);
    const direct = await loadTextEmbedder(loadCheckpoint(dir), rt);
    const [d] = await direct.embed(["a red circle"]);
    await direct.release();
    assert.deepEqual(Array.from(a), Array.from(d));
  } finally {
    await engine.close();
  }
});

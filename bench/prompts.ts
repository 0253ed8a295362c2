/**
 * Latency the prompt checks add to a request (the Playground page allows verify_prompt_safety "up to 500ms"):
 * - lexical: verify_prompt_safety over the built-in categories plus two client topics, in-process, per prompt of the
 *   labelled set (src/prompts/fixtures/labelled-topics.ts), median and p99 over repeated passes;
 * - semantic: the same with config.prompts.semanticThreshold set, the embeddings from easel-shapes' CLIP text encoder
 *   through the engine's worker thread (what `easel serve` does), after one warm-up call that loads the encoder.
 * `node --import tsx bench/prompts.ts [--quick]` prints a table and one `BENCH_JSON ` line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { loadConfig } from "../src/config/index.ts";
import { Engine } from "../src/engine/engine.ts";
import { LABELLED_TOPICS } from "../src/prompts/fixtures/labelled-topics.ts";
import { createPromptService } from "../src/prompts/index.ts";

export interface PromptBenchResult {
  prompts: number;
  lexical: { p50Ms: number; p99Ms: number };
  semantic: { p50Ms: number; p99Ms: number; firstCallMs: number };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function timeAll(run: (prompt: string) => Promise<unknown>, passes: number): Promise<number[]> {
  const ms: number[] = [];
  for (let p = 0; p < passes; p++) {
    for (const c of LABELLED_TOPICS) {
      const t0 = performance.now();
      await run(c.prompt).catch(() => undefined);
      ms.push(performance.now() - t0);
    }
  }
  return ms;
}

export async function benchPrompts(opts: { quick?: boolean } = {}): Promise<PromptBenchResult> {
  const passes = opts.quick ? 3 : 20;
  const req = { model: "easel-shapes", n: 1, width: 64, height: 64, output: { format: "png" as const } };
  const options = { verifySafety: true, rejectionTopics: ["gambling", "brand logos"] };
  const lexicalSvc = createPromptService({ config: loadConfig({ env: {}, flags: {} }) });
  const lexical = await timeAll((prompt) => lexicalSvc.prepare({ ...req, prompt }, options), passes);

  const cache = mkdtempSync(join(tmpdir(), "easel-bench-prompts-"));
  const engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: cache });
  try {
    const dir = resolve("models/easel-shapes");
    // A threshold above any similarity: every prompt pays for the embeddings, none is refused by them.
    const config = loadConfig({ env: {}, flags: { prompts: { semanticThreshold: 1 } } });
    const svc = createPromptService({ config, embedderFor: () => (texts) => engine.embedText(dir, texts) });
    const t0 = performance.now();
    await svc.prepare({ ...req, prompt: "a red circle" }, options);
    const firstCallMs = performance.now() - t0;
    const semantic = await timeAll((prompt) => svc.prepare({ ...req, prompt }, options), Math.max(1, Math.floor(passes / 4)));
    return {
      prompts: LABELLED_TOPICS.length,
      lexical: { p50Ms: quantile(lexical, 0.5), p99Ms: quantile(lexical, 0.99) },
      semantic: { p50Ms: quantile(semantic, 0.5), p99Ms: quantile(semantic, 0.99), firstCallMs },
    };
  } finally {
    await engine.close();
    rmSync(cache, { recursive: true, force: true });
  }
}

export function printPromptBench(r: PromptBenchResult): void {
  console.log(`prompt checks (${r.prompts} labelled prompts; verify_prompt_safety + 2 topics)`);
  console.log(`  lexical            p50 ${r.lexical.p50Ms.toFixed(3)} ms   p99 ${r.lexical.p99Ms.toFixed(3)} ms`);
  console.log(`  + CLIP similarity  p50 ${r.semantic.p50Ms.toFixed(3)} ms   p99 ${r.semantic.p99Ms.toFixed(3)} ms   (first call, loading the encoder: ${r.semantic.firstCallMs.toFixed(0)} ms)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const r = await benchPrompts({ quick: process.argv.includes("--quick") });
  printPromptBench(r);
  console.log(`BENCH_JSON ${JSON.stringify({ prompts: r })}`);
}

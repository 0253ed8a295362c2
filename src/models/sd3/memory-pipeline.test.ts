import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadCheckpoint } from "../../checkpoint/checkpoint.ts";
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession } from "../../runtime/session.ts";
import type { Checkpoint, LoadedPipeline, PipelineParams, RuntimeOptions } from "../pipeline/family.ts";
import { MAX_T5_SEQUENCE_LENGTH } from "./config.ts";
import { planSd3Memory, SD3_COMPONENTS, type Sd3MemoryPlan, sd3MemoryInput, sd3PeakBytes } from "./memory.ts";
import { loadSd3, planSd3ForRuntime } from "./pipeline.ts";

const MODEL = "test/fixtures/models/sd3";
const GiB = 1024 ** 3;

/** Which component a built graph belongs to, from its cache folder (`<component>-<hash>/model.onnx`). */
function componentOf(modelPath: string): string {
  const dir = basename(dirname(modelPath));
  for (const c of ["clip-text", "t5-encoder-int8", "t5-encoder", "sd3-transformer", "vae-decoder", "vae-encoder"]) if (dir.startsWith(`${c}-`)) return c;
  throw new Error(`unknown component folder ${dir}`);
}

/** A session factory that logs every open and release, and tracks how many sessions of each component are open. */
function countingFactory() {
  const events: string[] = [];
  const open = new Map<string, number>();
  const factory = async (modelPath: string): Promise<ModelSession> => {
    const c = componentOf(modelPath);
    const s = await createSession(modelPath, { intraOpThreads: 1 });
    events.push(`open ${c}`);
    open.set(c, (open.get(c) ?? 0) + 1);
    return {
      ...s,
      run: (feeds, outputs) => s.run(feeds, outputs),
      async release() {
        events.push(`release ${c}`);
        open.set(c, (open.get(c) ?? 0) - 1);
        await s.release();
      },
    };
  };
  const count = (what: string) => events.filter((e) => e === what).length;
  const openNow = () => [...open].filter(([, n]) => n > 0).map(([c]) => c).sort();
  return { factory, events, count, openNow };
}

const params: PipelineParams = { prompt: "a red cube", negativePrompt: "blurry", n: 1, width: 32, height: 32, steps: 2, seed: 7, maxSequenceLength: 16 };
const allOnDemand: Sd3MemoryPlan = {
  modes: { clip: "on-demand", t5: "on-demand", transformer: "on-demand", vae: "on-demand" },
  t5: "fp32",
  peakBytes: 0,
  budgetBytes: 0,
  reloadBytes: 0,
  warning: { code: "W_MEMORY_PLAN", message: "test plan: every component per request" },
};

describe("SD3 memory plan in the pipeline (micro sd3 checkpoint)", () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "easel-sd3-mem-"));
  const rt: RuntimeOptions = { executionProvider: "cpu", intraOpThreads: 1, cacheDir, memory: { totalBytes: 64 * GiB, freeBytes: 60 * GiB } };
  let ckpt: Checkpoint;
  let resident: LoadedPipeline;
  const residentLog = countingFactory();
  const pipes: LoadedPipeline[] = [];
  before(async () => {
    ckpt = loadCheckpoint(MODEL);
    resident = await loadSd3(ckpt, rt, { sessionFactory: residentLog.factory });
  });
  after(async () => {
    await resident?.release();
    for (const p of pipes) await p.release();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  test("plenty of memory: every component resident, opened once, no warning", async () => {
    assert.deepEqual(residentLog.openNow(), ["clip-text", "sd3-transformer", "vae-decoder"]);
    const a = await resident.run(params);
    await resident.run(params);
    assert.equal(residentLog.count("open t5-encoder"), 1, "T5 opened on first use and kept");
    assert.equal(residentLog.events.filter((e) => e.startsWith("release")).length, 0);
    assert.deepEqual(a.warnings, []);
  });

  test("a machine too small for everything at once: the plan's on-demand components opened per request and released, same latents bit for bit", async () => {
    // Free memory = the all-on-demand peak (no reserve): keeping everything resident cannot fit. On the micro
    // checkpoint the weights are tiny beside the working memory, so the plan keeps the component with the largest
    // step (T5 at 512 tokens) and opens the others per request.
    const machine = { totalBytes: 8 * GiB, freeBytes: 0, reserveBytes: 0 };
    const input = sd3MemoryInput(ckpt, machine, { t5Quantization: "none", size: { width: 128, height: 128 }, maxT5Tokens: MAX_T5_SEQUENCE_LENGTH });
    machine.freeBytes = sd3PeakBytes(input.weights, input.working, new Set(SD3_COMPONENTS));
    const plan = planSd3Memory({ ...input, freeBytes: machine.freeBytes });
    const onDemand = SD3_COMPONENTS.filter((c) => plan.modes[c] === "on-demand");
    assert.ok(onDemand.length > 0 && onDemand.length < SD3_COMPONENTS.length, `plan ${JSON.stringify(plan.modes)}`);
    const graphOf = { clip: "clip-text", t5: "t5-encoder", transformer: "sd3-transformer", vae: "vae-decoder" } as const;
    const log = countingFactory();
    const pipe = await loadSd3(ckpt, { ...rt, memory: machine }, { sessionFactory: log.factory });
    pipes.push(pipe);
    const ref = await resident.run(params);
    for (let r = 1; r <= 2; r++) {
      const out = await pipe.run(params);
      assert.deepEqual(out.latents, ref.latents, "on-demand and resident runs give identical latents");
      for (const c of onDemand) {
        assert.equal(log.count(`release ${graphOf[c]}`), log.count(`open ${graphOf[c]}`), `${c} released after its step`);
        assert.ok(log.count(`open ${graphOf[c]}`) >= r, `${c} opened for each request`);
        assert.ok(!log.openNow().includes(graphOf[c]));
      }
      for (const c of SD3_COMPONENTS.filter((x) => plan.modes[x] === "resident")) assert.equal(log.count(`release ${graphOf[c]}`), 0, `${c} stays open`);
      const warning = out.warnings.find((w) => w.code === "W_MEMORY_PLAN");
      assert.match(warning?.message ?? "", /loaded per request and released/);
    }
  });

  test('engine.precision "int8" plans T5 in int8 as engine.t5Quantization does; fp32 keeps it fp32', () => {
    assert.equal(planSd3ForRuntime(ckpt, { ...rt, precision: "int8" }).t5, "int8");
    assert.equal(planSd3ForRuntime(ckpt, { ...rt, precision: "fp32" }).t5, "fp32");
  });

  test("every component on demand: each opened for its step and released before the next one opens; same latents", async () => {
    const log = countingFactory();
    const pipe = await loadSd3(ckpt, rt, { sessionFactory: log.factory, memoryPlan: allOnDemand });
    pipes.push(pipe);
    assert.deepEqual(log.events, [], "nothing opened at load");
    const ref = await resident.run(params);
    const out = await pipe.run(params);
    assert.deepEqual(out.latents, ref.latents);
    assert.deepEqual(out.images[0].rgb, ref.images[0].rgb);
    assert.deepEqual(log.events, [
      "open clip-text",
      "release clip-text",
      "open clip-text",
      "release clip-text",
      "open t5-encoder",
      "release t5-encoder",
      "open sd3-transformer",
      "release sd3-transformer",
      "open vae-decoder",
      "release vae-decoder",
    ]);
    assert.deepEqual(log.openNow(), []);
    // A failed request (bad init latents, after conditioning) leaves nothing open either.
    await assert.rejects(pipe.run({ ...params, initLatents: new Float32Array(3) }), (e: unknown) => e instanceof EaselError && e.param === "init_latents");
    assert.deepEqual(log.openNow(), []);
  });

  test("int8 T5 when configured: the int8 graph runs, results differ from fp32, and every result says so", async () => {
    const log = countingFactory();
    const pipe = await loadSd3(ckpt, { ...rt, t5Quantization: "int8" }, { sessionFactory: log.factory });
    pipes.push(pipe);
    const out = await pipe.run(params);
    assert.equal(log.count("open t5-encoder-int8"), 1);
    assert.equal(log.count("open t5-encoder"), 0);
    const q = out.warnings.find((w) => w.code === "W_QUANTIZED");
    assert.match(q?.message ?? "", /T5 ran with weight-only int8/);
    const ref = await resident.run(params);
    assert.notDeepEqual(out.latents, ref.latents, "int8 weights change the conditioning");
    // No T5 in the request: nothing quantised ran, nothing to report.
    const noT5 = await pipe.run({ ...params, useT5: false });
    assert.equal(noT5.warnings.find((w) => w.code === "W_QUANTIZED"), undefined);
  });

  test("T5 that does not fit: requests that need it fail with the plan's error, no_t5 requests run", async () => {
    const t5Error = new EaselError("E_NOT_SUPPORTED", "T5 does not fit in memory (test): use --t5-int8 or --no-t5", { param: "no_t5" });
    const log = countingFactory();
    const plan: Sd3MemoryPlan = { ...allOnDemand, t5: "unavailable", t5Error };
    const pipe = await loadSd3(ckpt, rt, { sessionFactory: log.factory, memoryPlan: plan });
    pipes.push(pipe);
    await assert.rejects(pipe.run(params), (e: unknown) => e === t5Error);
    const out = await pipe.run({ ...params, useT5: false });
    assert.equal(out.latents.length, 16 * 4 * 4);
    assert.equal(log.count("open t5-encoder"), 0);
    assert.deepEqual(log.openNow(), []);
  });
});

/**
 * `npm run bench [-- --only gemm,sd15,sdxl,sd3,samplers,t5] [--quick] [--threads N] [--weights f16|f32] [--batch N] [--sizes 512,1024]`: speed and memory of this machine
 * on the CPU engine, as ratios against a GEMM baseline measured in the same run.
 *
 * - gemm: fp32 MatMul n x n x n through onnxruntime, best of a few runs -> GFLOP/s (the practical peak);
 * - sd15 / sdxl / sd3: random-weight denoisers with the published configs (bench/configs.ts: the SD1.5 and SDXL
 *   UNets, SD3 medium's MMDiT transformer with 333 context tokens), one child process per model
 *   (bench/denoiser-run.ts): seconds per call (median after a warm-up), peak RSS, achieved GFLOP/s from the
 *   analytic count (bench/flops.ts) and its ratio to the GEMM peak. `--quick` runs SD3 with 2 of its 24 layers;
 * - samplers: bench/samplers.ts's per-step overhead, as a ratio to one SD1.5 UNet call;
 * - t5: bench/t5.ts, a mid-size T5 encoder fp32 vs weight-only int8 (encode time for 256 tokens, peak RSS);
 * - gateway: bench/gateway.ts, the latency a gateway adds per proxied request (p50/p99) at a steady rate on loopback;
 * - e2e: bench/e2e.ts, seconds per image end to end (text encoders, denoiser steps, VAE decode) for SD-Turbo 512² 1
 *   step (fp32 and int8), SDXL-Turbo 512² 4 steps, SDXL 1024² 30 steps and SD3 medium 1024² 28 steps with int8 T5,
 *   the first image after a start with and without the graph cache, and each part's share; models over
 *   `--e2e-max-gib` (default 13) are skipped with the command;
 * - precision: bench/precision.ts, the opt-in int8 path against fp32 on one SD1.5 UNet call (512² batch 2; `--quick`
 *   256² batch 1): speed ratio and the output's deviation from fp32; and the default model easel-shapes at int8 vs
 *   fp32 (pixel difference over 100 evaluation prompts).
 * - scale-out: bench/scale-out.ts, 200 small jobs through 2 API nodes and 2 workers over PostgreSQL and Redis: jobs/s
 *   and the queue's overhead per job (end-to-end minus the worker's run time); skipped without PostgreSQL or Redis.
 * - lora: bench/lora.ts, what applying a LoRA set costs (rank 32 over every attention and feed-forward projection of
 *   the SD1.5 UNet; `--quick`: rank 8): merge seconds once per set, the merged file's size, peak RSS.
 * - prompts: bench/prompts.ts, the latency verify_prompt_safety and rejection topics add per request (words and phrases;
 *   with the CLIP similarity through the engine's worker on easel-shapes).
 * Prints a table, then one JSON line starting with `BENCH_JSON `. Random weights go to a temporary directory
 * (fp16 safetensors written tensor by tensor), deleted at the end.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BENCH_MODELS, type BenchModelId } from "./configs.ts";
import {
  activationEstimateBytes,
  benchConfigJson,
  benchLabel,
  benchModelDir,
  type DenoiserRow,
  type DenoiserSetup,
  type DenoiserShape,
  denoiserGflop,
  memAvailableBytes,
  runDenoiserChild,
  sessionEstimateBytes,
} from "./denoiser-run.ts";
import { benchE2e, type E2eModelId, type E2eRow, printE2eBench } from "./e2e.ts";
import { benchGateway, type GatewayBenchResult, printGatewayBench } from "./gateway.ts";
import { type GemmResult, measureGemm } from "./gemm.ts";
import { benchLora, type LoraBenchResult, printLoraBench } from "./lora.ts";
import { benchPrecision, benchShapesPrecision, type PrecisionBenchResult, printPrecisionBench, printShapesPrecision, type ShapesPrecisionResult } from "./precision.ts";
import { benchPrompts, type PromptBenchResult, printPromptBench } from "./prompts.ts";
import { benchScaleOut, printScaleOut, type ScaleOutResult } from "./scale-out.ts";
import { benchServeMemory, printServeMemory, type ServeMemoryResult } from "./serve-memory.ts";
import { benchT5, printT5Bench, type T5BenchResult } from "./t5.ts";

const GiB = 1024 ** 3;
const PARTS = ["gemm", "sd15", "sdxl", "sd3", "samplers", "t5", "serve-memory", "gateway", "precision", "e2e", "scale-out", "prompts", "lora"] as const;
type Part = (typeof PARTS)[number];

interface Args {
  only: Set<Part>;
  quick: boolean;
  threads?: number;
  weights: "F16" | "F32";
  /** Overrides every denoiser shape's batch (memory-starved machines). */
  batch?: number;
  /** Only these image sizes of the denoiser plans. */
  sizes?: number[];
  e2eModels: E2eModelId[];
  e2eMaxGiB: number;
  /** Steps of every end-to-end image instead of each model's own (a memory check at full size without the full time). */
  e2eSteps?: number;
  /** The engine's memory limit (engine.memoryLimitGiB) in the end-to-end runs. */
  e2eMemoryLimitGiB?: number;
  /** Only the first image after a start: no warm images, per-part timing or second start (a memory check). */
  e2eFirstOnly?: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { only: new Set(PARTS), quick: false, weights: "F16", e2eModels: ["sd-turbo", "sdxl-turbo", "sdxl", "sd3"], e2eMaxGiB: 13 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") args.quick = true;
    else if (a === "--only") {
      const list = (argv[++i] ?? "").split(",").filter(Boolean);
      const bad = list.filter((p) => !PARTS.includes(p as Part));
      if (list.length === 0 || bad.length > 0) usage(`--only takes a comma list of ${PARTS.join(", ")}; got ${argv[i]}`);
      args.only = new Set(list as Part[]);
    } else if (a === "--threads") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 1024) usage(`--threads must be an integer in [1, 1024], got ${argv[i]}`);
      args.threads = n;
    } else if (a === "--batch") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 64) usage(`--batch must be an integer in [1, 64], got ${argv[i]}`);
      args.batch = n;
    } else if (a === "--sizes") {
      const list = (argv[++i] ?? "").split(",").map(Number);
      if (list.length === 0 || !list.every((n) => Number.isInteger(n) && n >= 64 && n % 64 === 0)) {
        usage(`--sizes takes a comma list of image sizes, multiples of 64; got ${argv[i]}`);
      }
      args.sizes = list;
    } else if (a === "--e2e-models") {
      const list = (argv[++i] ?? "").split(",").filter(Boolean);
      const known = ["sd-turbo", "sdxl-turbo", "sdxl", "sd3"];
      if (list.length === 0 || list.some((m) => !known.includes(m))) usage(`--e2e-models takes a comma list of ${known.join(", ")}; got ${argv[i]}`);
      args.e2eModels = list as E2eModelId[];
    } else if (a === "--e2e-steps") {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) usage(`--e2e-steps must be a positive integer, got ${argv[i]}`);
      args.e2eSteps = n;
    } else if (a === "--e2e-first-only") {
      args.e2eFirstOnly = true;
    } else if (a === "--e2e-memory-limit-gib") {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) usage(`--e2e-memory-limit-gib must be a positive number, got ${argv[i]}`);
      args.e2eMemoryLimitGiB = n;
    } else if (a === "--e2e-max-gib") {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) usage(`--e2e-max-gib must be a positive number, got ${argv[i]}`);
      args.e2eMaxGiB = n;
    } else if (a === "--weights") {
      const v = (argv[++i] ?? "").toUpperCase();
      if (v !== "F16" && v !== "F32") usage(`--weights must be f16 or f32, got ${argv[i]}`);
      args.weights = v;
    } else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument ${a}`);
  }
  return args;
}

function usage(error?: string): never {
  if (error) console.error(error);
  console.error("usage: npm run bench -- [--only gemm,sd15,sdxl,sd3,samplers,t5,serve-memory,gateway,precision,e2e,scale-out,prompts,lora] [--quick] [--threads N] [--weights f16|f32] [--batch N] [--sizes 512,1024] [--e2e-models sd-turbo,sdxl-turbo,sdxl,sd3] [--e2e-max-gib 13] [--e2e-steps N] [--e2e-memory-limit-gib G] [--e2e-first-only]");
  process.exit(error ? 2 : 0);
}

async function loadSamplerBench(): Promise<(() => Promise<Record<string, number>>) | undefined> {
  const file = join(import.meta.dirname, "samplers.ts");
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as { benchSamplers?: () => Promise<Record<string, number>> };
  return mod.benchSamplers;
}

const fmt = (x: number | undefined, digits = 2) => (x === undefined ? "-" : x.toFixed(digits));

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "easel-bench-"));
  const cleanup = () => rmSync(workDir, { recursive: true, force: true });
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    logicalCores: cpus().length,
    totalMemGiB: totalmem() / GiB,
    availableMemGiB: (memAvailableBytes() ?? 0) / GiB,
    node: process.version,
    threads: args.threads ?? "onnxruntime default",
    /** Other work on the machine skews every number: the 1-minute load average at the start. */
    loadAverage1m: loadavg()[0],
    quick: args.quick,
    weights: args.weights,
  };
  console.error(`easel bench: ${machine.cpu}, ${machine.logicalCores} cores, ${fmt(machine.totalMemGiB, 1)} GiB (${fmt(machine.availableMemGiB, 1)} available)`);

  let gemm: GemmResult | undefined;
  const setups: (DenoiserSetup & { id: BenchModelId })[] = [];
  const denoiserRows: (DenoiserRow & { id: BenchModelId })[] = [];
  let samplers: Record<string, number> | undefined;
  let samplerNote: string | undefined;
  let t5: T5BenchResult | undefined;
  let serveMemory: ServeMemoryResult | undefined;
  let gateway: GatewayBenchResult | undefined;
  let precision: PrecisionBenchResult | undefined;
  let scaleOut: ScaleOutResult | undefined;
  let prompts: PromptBenchResult | undefined;
  let lora: LoraBenchResult | undefined;
  let e2e: E2eRow[] | undefined;
  let shapes: ShapesPrecisionResult | undefined;
  try {
    if (args.only.has("gemm")) {
      console.error("  gemm ...");
      gemm = await measureGemm(args.quick ? 1024 : 2048, args.quick ? 3 : 5, { intraOpThreads: args.threads });
    }
    const plans: [BenchModelId, DenoiserShape[], Record<string, unknown>?][] = [
      ["sd15", args.quick ? [{ size: 256, batch: 1, runs: 2 }] : [{ size: 512, batch: 2, runs: 3 }]],
      [
        "sdxl",
        args.quick
          ? [{ size: 256, batch: 1, runs: 2 }]
          : [
              { size: 512, batch: 2, runs: 3 },
              { size: 1024, batch: 2, runs: 2 },
            ],
      ],
      args.quick
        ? ["sd3", [{ size: 256, batch: 1, runs: 2 }], { num_layers: 2 }]
        : [
            "sd3",
            [
              { size: 512, batch: 2, runs: 3 },
              { size: 1024, batch: 2, runs: 3 },
            ],
          ],
    ];
    for (const [model, planned, configPatch] of plans) {
      if (!args.only.has(model)) continue;
      const shapes = planned.filter((s) => !args.sizes || args.sizes.includes(s.size)).map((s) => ({ ...s, batch: args.batch ?? s.batch }));
      if (shapes.length === 0) continue;
      const m = BENCH_MODELS[model];
      const json = benchConfigJson(model, configPatch);
      const need = sessionEstimateBytes(m, json) + activationEstimateBytes(m, json, shapes[0]);
      const avail = memAvailableBytes();
      if (avail !== undefined && need > avail) {
        const reason = `needs about ${fmt(need / GiB, 1)} GiB (float32 weights and activations), ${fmt(avail / GiB, 1)} GiB available`;
        for (const s of shapes) {
          denoiserRows.push({ id: model, model: benchLabel(model, configPatch), size: s.size, batch: s.batch, status: "skipped", reason, gflopPerCall: denoiserGflop(m, json, s) });
        }
        continue;
      }
      console.error(`  ${benchLabel(model, configPatch)} ...`);
      const { setup, rows } = await runDenoiserChild({ model, workDir, shapes, intraOpThreads: args.threads, weightDtype: args.weights, configPatch });
      if (setup) setups.push({ ...setup, id: model });
      denoiserRows.push(...rows.map((r) => ({ ...r, id: model })));
      rmSync(benchModelDir(workDir, model), { recursive: true, force: true });
      rmSync(join(workDir, "graphs"), { recursive: true, force: true });
    }
    if (gemm && denoiserRows.some((r) => r.status === "ok")) {
      // Measured again after the long runs and the best kept: neighbours' load comes and goes on a shared machine.
      console.error("  gemm (again) ...");
      const again = await measureGemm(gemm.n, gemm.runs, { intraOpThreads: args.threads });
      if (again.gflops > gemm.gflops) gemm = again;
    }
    if (args.only.has("samplers")) {
      const bench = await loadSamplerBench();
      if (bench) {
        console.error("  samplers ...");
        samplers = await bench();
      } else samplerNote = "bench/samplers.ts is not present";
    }
    if (args.only.has("t5")) {
      console.error("  t5 encoder fp32 vs int8 ...");
      t5 = await benchT5({ workDir, runs: args.quick ? 2 : 5, tokens: 256, threads: args.threads });
    }
    if (args.only.has("serve-memory")) {
      console.error("  server memory after a 1024x1024 request ...");
      serveMemory = await benchServeMemory({ afterSeconds: args.quick ? 10 : 60 });
    }
    if (args.only.has("gateway")) gateway = await benchGateway({ quick: args.quick, log: (l) => console.error(l) });
    if (args.only.has("precision")) {
      console.error("  int8 vs fp32 UNet call ...");
      const shape = args.quick ? { size: 256, batch: 1, runs: 2 } : { size: 512, batch: args.batch ?? 2, runs: 3 };
      precision = await benchPrecision({ workDir, ...shape, threads: args.threads });
      console.error("  easel-shapes int8 vs fp32 images ...");
      shapes = await benchShapesPrecision({ workDir, prompts: args.quick ? 10 : 100, threads: args.threads });
    }
    if (args.only.has("e2e")) {
      console.error("  end to end ...");
      e2e = await benchE2e({ workDir, models: args.e2eModels, maxGiB: args.e2eMaxGiB, steps: args.e2eSteps, memoryLimitGiB: args.e2eMemoryLimitGiB, firstOnly: args.e2eFirstOnly, threads: args.threads, int8: !args.e2eFirstOnly, warmRuns: args.e2eFirstOnly ? 0 : args.quick ? 1 : 2, log: (l) => console.error(l) });
    }
    if (args.only.has("scale-out")) {
      console.error("  scale-out ...");
      scaleOut = await benchScaleOut({ quick: args.quick, workDir, log: (l) => console.error(l) });
    }
    if (args.only.has("prompts")) {
      console.error("  prompt checks ...");
      prompts = await benchPrompts({ quick: args.quick });
    }
    if (args.only.has("lora")) {
      console.error("  LoRA merge ...");
      lora = await benchLora("sd15", args.quick ? 8 : 32);
    }
  } finally {
    cleanup();
  }

  for (const r of denoiserRows) {
    if (r.achievedGflops !== undefined && gemm) r.ratioToGemm = r.achievedGflops / gemm.gflops;
  }
  const sd15Call = denoiserRows.find((r) => r.id === "sd15" && r.status === "ok")?.secondsPerCall;

  console.log("");
  console.log(
    `machine: ${machine.cpu}, ${machine.logicalCores} logical cores, ${fmt(machine.totalMemGiB, 1)} GiB RAM, node ${machine.node}, ` +
      `threads: ${machine.threads}, load average at start ${fmt(machine.loadAverage1m, 1)}`,
  );
  if (gemm) console.log(`fp32 GEMM ${gemm.n}^3 via onnxruntime: ${fmt(gemm.gflops, 1)} GFLOP/s (best of ${gemm.runs} at start and end; median ${fmt((2 * gemm.n ** 3) / gemm.medianSeconds / 1e9, 1)})`);
  if (denoiserRows.length > 0) {
    console.log("");
    printTable(
      ["denoiser (random weights)", "size", "batch", "s/call", "GFLOP/call", "GFLOP/s", "x GEMM peak", "peak RSS GiB", "note"],
      denoiserRows.map((r) => [
        r.model,
        `${r.size}`,
        `${r.batch}`,
        fmt(r.secondsPerCall),
        fmt(r.gflopPerCall, 0),
        fmt(r.achievedGflops, 1),
        fmt(r.ratioToGemm),
        fmt(r.peakRssGiB),
        r.status === "ok" ? `runs ${r.times?.map((t) => t.toFixed(2)).join(", ")}` : `${r.status}: ${r.reason}`,
      ]),
    );
    if (denoiserRows.some((r) => r.id === "sd3")) console.log(`  ${BENCH_MODELS.sd3.label}: context ${BENCH_MODELS.sd3.contextLength} tokens (77 CLIP + 256 T5)`);
    for (const s of setups) {
      console.log(
        `  ${s.model}: ${(s.params / 1e6).toFixed(1)}M params, ${fmt(s.weightGiB)} GiB ${machine.weights} written in ${fmt(s.weightWriteSeconds, 1)} s, ` +
          `graph ${fmt(s.graphSeconds, 1)} s, session ${fmt(s.sessionSeconds, 1)} s, RSS after session ${fmt(s.rssAfterSessionGiB)} GiB (peak so far ${fmt(s.peakRssAfterSessionGiB)})`,
      );
    }
  }
  if (samplers) {
    console.log("");
    printTable(
      ["sampler overhead", "value", "x SD1.5 UNet call"],
      Object.entries(samplers).map(([k, v]) => [k, fmt(v, 3), sd15Call && k.includes("ms") ? fmt(v / 1000 / sd15Call, 5) : "-"]),
    );
  } else if (samplerNote) console.log(`samplers: ${samplerNote}`);

  if (t5) {
    console.log("");
    printT5Bench(t5);
  }
  if (serveMemory) {
    console.log("");
    printServeMemory(serveMemory);
  }
  if (gateway) {
    console.log("");
    printGatewayBench(gateway, printTable);
  }
  if (precision) {
    console.log("");
    printPrecisionBench(precision, printTable);
  }
  if (shapes) printShapesPrecision(shapes);
  if (e2e) {
    console.log("");
    printE2eBench(e2e, printTable);
  }

  if (scaleOut) {
    console.log("");
    printScaleOut(scaleOut);
  }

  if (prompts) {
    console.log("");
    printPromptBench(prompts);
  }

  if (lora) {
    console.log("");
    printLoraBench(lora);
  }

  const json = {
    prompts,
    lora,
    scaleOut,
    e2e,
    precision,
    shapes,
    t5,
    serveMemory,
    gateway,
    machine,
    gemm: gemm && { n: gemm.n, gflops: gemm.gflops, bestSeconds: gemm.bestSeconds, medianSeconds: gemm.medianSeconds },
    unet: denoiserRows.filter((r) => r.id !== "sd3").map(({ id: _id, ...r }) => r),
    unetSetup: setups.filter((r) => r.id !== "sd3").map(({ id: _id, ...r }) => r),
    sd3: denoiserRows.filter((r) => r.id === "sd3").map(({ id: _id, ...r }) => r),
    sd3Setup: setups.filter((r) => r.id === "sd3").map(({ id: _id, ...r }) => r)[0],
    samplers: samplers && Object.fromEntries(
      Object.entries(samplers).map(([k, v]) => [k, { value: v, ratioToSd15UnetCall: sd15Call && k.includes("ms") ? v / 1000 / sd15Call : null }]),
    ),
  };
  console.log("");
  console.log(`BENCH_JSON ${JSON.stringify(json)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

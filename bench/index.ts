/**
 * `npm run bench [-- --only sd15,sdxl,gemm,samplers,t5] [--quick] [--threads N] [--weights f16|f32] [--batch N] [--sizes 512,1024]`: speed and memory of this machine
 * on the CPU engine, as ratios against a GEMM baseline measured in the same run.
 *
 * - gemm: fp32 MatMul n x n x n through onnxruntime, best of a few runs -> GFLOP/s (the practical peak);
 * - sd15 / sdxl: random-weight UNets with the published configs (bench/configs.ts), one child process per model
 *   (bench/unet-run.ts): seconds per UNet call (median after a warm-up), peak RSS, achieved GFLOP/s from the
 *   analytic count (bench/flops.ts) and its ratio to the GEMM peak;
 * - samplers: bench/samplers.ts's per-step overhead, as a ratio to one SD1.5 UNet call;
 * - t5: bench/t5.ts, a mid-size T5 encoder fp32 vs weight-only int8 (encode time for 256 tokens, peak RSS).
 * Prints a table, then one JSON line starting with `BENCH_JSON `. Random weights go to a temporary directory
 * (fp16 safetensors written tensor by tensor), deleted at the end.
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createRecordingWeights } from "../src/graph/weights.ts";
import { unetConfigFromJson } from "../src/models/_shared/unet-config.ts";
import { buildUnetGraph } from "../src/models/_shared/unet.graph.ts";
import { BENCH_MODELS } from "./configs.ts";
import { countUnetFlops } from "./flops.ts";
import { type GemmResult, measureGemm } from "./gemm.ts";
import { benchT5, printT5Bench, type T5BenchResult } from "./t5.ts";
import { activationEstimateBytes, memAvailableBytes, type UnetRunMessage, type UnetRunSpec, type UnetShape } from "./unet-run.ts";

const GiB = 1024 ** 3;
const PARTS = ["gemm", "sd15", "sdxl", "samplers", "t5"] as const;
type Part = (typeof PARTS)[number];

interface Args {
  only: Set<Part>;
  quick: boolean;
  threads?: number;
  weights: "F16" | "F32";
  /** Overrides every UNet shape's batch (memory-starved machines). */
  batch?: number;
  /** Only these image sizes of the UNet plans. */
  sizes?: number[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { only: new Set(PARTS), quick: false, weights: "F16" };
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
  console.error("usage: npm run bench -- [--only gemm,sd15,sdxl,samplers,t5] [--quick] [--threads N] [--weights f16|f32] [--batch N] [--sizes 512,1024]");
  process.exit(error ? 2 : 0);
}

interface UnetRow {
  model: string;
  size: number;
  batch: number;
  status: "ok" | "skipped" | "failed";
  reason?: string;
  secondsPerCall?: number;
  times?: number[];
  gflopPerCall: number;
  achievedGflops?: number;
  ratioToGemm?: number;
  peakRssGiB?: number;
}

interface UnetSetup {
  model: string;
  params: number;
  weightGiB: number;
  weightWriteSeconds: number;
  graphSeconds: number;
  sessionSeconds: number;
  rssAfterSessionGiB: number;
}

/** Runs one model's shapes in a child process, collecting its messages; a crash marks the remaining shapes failed. */
function runUnetChild(spec: UnetRunSpec): Promise<{ setup?: UnetSetup; rows: UnetRow[] }> {
  const m = BENCH_MODELS[spec.model];
  const cfg = unetConfigFromJson(m.unetConfig);
  const flopsOf = (s: UnetShape) => countUnetFlops(cfg, { batch: s.batch, height: s.size / 8, width: s.size / 8, contextLength: m.contextLength }).total / 1e9;
  const rows: UnetRow[] = [];
  let setup: UnetSetup | undefined;
  let maxRss = 0;
  let minAvailable = Number.POSITIVE_INFINITY;
  return new Promise((resolve) => {
    const child: ChildProcess = fork(join(import.meta.dirname, "unet-run.ts"), [JSON.stringify(spec)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += String(d);
    });
    child.on("message", (msg: UnetRunMessage) => {
      if (msg.type === "rss") {
        maxRss = Math.max(maxRss, msg.bytes);
        if (msg.availableBytes !== undefined) minAvailable = Math.min(minAvailable, msg.availableBytes);
      } else if (msg.type === "setup") {
        setup = {
          model: m.label,
          params: msg.params,
          weightGiB: msg.weightBytes / GiB,
          weightWriteSeconds: msg.weightWriteSeconds,
          graphSeconds: msg.graphSeconds,
          sessionSeconds: msg.sessionSeconds,
          rssAfterSessionGiB: msg.rssAfterSessionBytes / GiB,
        };
        console.error(`  ${m.label}: ${(msg.params / 1e6).toFixed(0)}M params written, graph built, session open (${msg.sessionSeconds.toFixed(1)} s)`);
      } else if (msg.type === "result") {
        const gflop = flopsOf(msg.shape);
        rows.push({
          model: m.label,
          size: msg.shape.size,
          batch: msg.shape.batch,
          status: "ok",
          secondsPerCall: msg.medianSeconds,
          times: msg.times,
          gflopPerCall: gflop,
          achievedGflops: gflop / msg.medianSeconds,
          peakRssGiB: msg.peakRssBytes / GiB,
        });
        console.error(`  ${m.label} ${msg.shape.size}px x${msg.shape.batch}: ${msg.medianSeconds.toFixed(2)} s/call`);
      } else {
        rows.push({ model: m.label, size: msg.shape.size, batch: msg.shape.batch, status: "skipped", reason: msg.reason, gflopPerCall: flopsOf(msg.shape) });
      }
    });
    child.on("exit", (code, signal) => {
      for (const s of spec.shapes) {
        if (rows.some((r) => r.size === s.size && r.batch === s.batch)) continue;
        const why =
          signal === "SIGKILL"
            ? `killed (SIGKILL: most likely out of memory) at RSS >= ${fmt(maxRss / GiB)} GiB, machine down to ${fmt(minAvailable / GiB)} GiB available`
            : `exited with ${signal ?? code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`;
        rows.push({ model: m.label, size: s.size, batch: s.batch, status: "failed", reason: why, gflopPerCall: flopsOf(s) });
      }
      resolve({ setup, rows });
    });
  });
}

/**
 * Bytes a UNet session holds before its first call: measured 5.3-5.4 bytes per parameter with F16 weights (fp32
 * copies after the folded Casts plus onnxruntime's buffers: SD1.5 4.3 GiB, SDXL 12.9 GiB); F32 weights are read
 * as they are, assumed 5.
 */
function sessionEstimateBytes(model: UnetRunSpec["model"], weights: "F16" | "F32"): number {
  const rec = createRecordingWeights({ dtype: "F16" });
  buildUnetGraph(unetConfigFromJson(BENCH_MODELS[model].unetConfig), rec.source);
  const params = rec.recorded().reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  return params * (weights === "F16" ? 5.5 : 5);
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
  const setups: UnetSetup[] = [];
  const unetRows: UnetRow[] = [];
  let samplers: Record<string, number> | undefined;
  let samplerNote: string | undefined;
  let t5: T5BenchResult | undefined;
  try {
    if (args.only.has("gemm")) {
      console.error("  gemm ...");
      gemm = await measureGemm(args.quick ? 1024 : 2048, args.quick ? 3 : 5, { intraOpThreads: args.threads });
    }
    const plans: [UnetRunSpec["model"], UnetShape[]][] = [
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
    ];
    for (const [model, planned] of plans) {
      if (!args.only.has(model)) continue;
      const shapes = planned.filter((s) => !args.sizes || args.sizes.includes(s.size)).map((s) => ({ ...s, batch: args.batch ?? s.batch }));
      if (shapes.length === 0) continue;
      const cfg = unetConfigFromJson(BENCH_MODELS[model].unetConfig);
      const need = sessionEstimateBytes(model, args.weights) + activationEstimateBytes(cfg, shapes[0]);
      const avail = memAvailableBytes();
      if (avail !== undefined && need > avail) {
        const reason = `needs about ${fmt(need / GiB, 1)} GiB (weights as read and as float32, activations), ${fmt(avail / GiB, 1)} GiB available`;
        for (const s of shapes) {
          const gflop = countUnetFlops(cfg, { batch: s.batch, height: s.size / 8, width: s.size / 8, contextLength: BENCH_MODELS[model].contextLength }).total / 1e9;
          unetRows.push({ model: BENCH_MODELS[model].label, size: s.size, batch: s.batch, status: "skipped", reason, gflopPerCall: gflop });
        }
        continue;
      }
      console.error(`  ${model} UNet ...`);
      const { setup, rows } = await runUnetChild({ model, workDir, shapes, intraOpThreads: args.threads, weightDtype: args.weights });
      if (setup) setups.push(setup);
      unetRows.push(...rows);
      rmSync(join(workDir, `${model}-unet`), { recursive: true, force: true });
      rmSync(join(workDir, "graphs"), { recursive: true, force: true });
    }
    if (gemm && unetRows.some((r) => r.status === "ok")) {
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
  } finally {
    cleanup();
  }

  for (const r of unetRows) {
    if (r.achievedGflops !== undefined && gemm) r.ratioToGemm = r.achievedGflops / gemm.gflops;
  }
  const sd15Call = unetRows.find((r) => r.model === BENCH_MODELS.sd15.label && r.status === "ok")?.secondsPerCall;

  console.log("");
  console.log(
    `machine: ${machine.cpu}, ${machine.logicalCores} logical cores, ${fmt(machine.totalMemGiB, 1)} GiB RAM, node ${machine.node}, ` +
      `threads: ${machine.threads}, load average at start ${fmt(machine.loadAverage1m, 1)}`,
  );
  if (gemm) console.log(`fp32 GEMM ${gemm.n}^3 via onnxruntime: ${fmt(gemm.gflops, 1)} GFLOP/s (best of ${gemm.runs} at start and end; median ${fmt((2 * gemm.n ** 3) / gemm.medianSeconds / 1e9, 1)})`);
  if (unetRows.length > 0) {
    console.log("");
    printTable(
      ["UNet (random weights)", "size", "batch", "s/call", "GFLOP/call", "GFLOP/s", "x GEMM peak", "peak RSS GiB", "note"],
      unetRows.map((r) => [
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
    for (const s of setups) {
      console.log(
        `  ${s.model}: ${(s.params / 1e6).toFixed(1)}M params, ${fmt(s.weightGiB)} GiB ${machine.weights} written in ${fmt(s.weightWriteSeconds, 1)} s, ` +
          `graph ${fmt(s.graphSeconds, 1)} s, session ${fmt(s.sessionSeconds, 1)} s, RSS after session ${fmt(s.rssAfterSessionGiB)} GiB`,
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

  const json = {
    t5,
    machine,
    gemm: gemm && { n: gemm.n, gflops: gemm.gflops, bestSeconds: gemm.bestSeconds, medianSeconds: gemm.medianSeconds },
    unet: unetRows,
    unetSetup: setups,
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

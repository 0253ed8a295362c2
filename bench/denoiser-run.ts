/**
 * One denoiser benchmark (a UNet, or SD3's MMDiT transformer) in its own process, so its peak RSS is its own and
 * its memory is returned afterwards: writes the published config and random weights (fp16 by default) for it,
 * streamed tensor by tensor from the builder's recorded weight list, builds the graph through the real
 * `prepareUnetModel` / `prepareMmditModel` path, opens an onnxruntime session and times calls at each requested
 * shape. `runDenoiserChild` (called by bench/index.ts) forks this file with a JSON spec as argv[2]; the child
 * reports each step over the IPC channel as it finishes.
 */

import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRecordingWeights, type RecordedWeight } from "../src/graph/weights.ts";
import { buildUnetGraph } from "../src/models/components/unet.graph.ts";
import { prepareUnetModel } from "../src/models/components/unet.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { RESIDENT_BYTES_PER_PARAM, UNET_ACTIVATION_BYTES_PER_PIXEL } from "../src/models/pipeline/limits.ts";
import { sd3TransformerConfigFromJson } from "../src/models/sd3/config.ts";
import { transformerWorkingBytes } from "../src/models/sd3/memory.ts";
import { buildMmditGraph } from "../src/models/sd3/mmdit.graph.ts";
import { prepareMmditModel } from "../src/models/sd3/mmdit.ts";
import { writeRandomSafetensors } from "../src/models/testing/tiny-checkpoint.ts";
import { createSession, type HostTensor } from "../src/runtime/session.ts";
import { BENCH_MODELS, type BenchModel, type BenchModelId } from "./configs.ts";
import { countMmditFlops, countUnetFlops } from "./flops.ts";

export interface DenoiserShape {
  /** Image size in pixels (square); the latent is size / 8. */
  size: number;
  batch: number;
  runs: number;
}

export interface DenoiserRunSpec {
  model: BenchModelId;
  workDir: string;
  shapes: DenoiserShape[];
  intraOpThreads?: number;
  /** Stored dtype of the random weights (the graph casts F16 to float32); default F16, half the disk. */
  weightDtype?: "F16" | "F32";
  /** Merged over the published config.json (`--quick` runs SD3 with `{ num_layers: 2 }`). */
  configPatch?: Record<string, unknown>;
}

export type DenoiserRunMessage =
  | { type: "setup"; params: number; weightBytes: number; weightWriteSeconds: number; graphSeconds: number; sessionSeconds: number; rssAfterSessionBytes: number; peakRssAfterSessionBytes: number }
  | { type: "result"; shape: DenoiserShape; times: number[]; medianSeconds: number; peakRssBytes: number }
  | { type: "skipped"; shape: DenoiserShape; reason: string }
  /** Sampled every second, so a run killed for memory still tells how far it got. */
  | { type: "rss"; bytes: number; availableBytes?: number };

export interface DenoiserRow {
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

export interface DenoiserSetup {
  model: string;
  params: number;
  weightGiB: number;
  weightWriteSeconds: number;
  graphSeconds: number;
  sessionSeconds: number;
  rssAfterSessionGiB: number;
  /** The process's peak RSS by the time the session is open: the stored weights' pages and their fp32 copies at once. */
  peakRssAfterSessionGiB: number;
}

const GiB = 1024 ** 3;

/** MemAvailable from /proc/meminfo (Linux), else os-independent unknown. */
export function memAvailableBytes(): number | undefined {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The config.json the benchmark writes: the published one with `patch` merged over it. */
export function benchConfigJson(model: BenchModelId, patch?: Record<string, unknown>): Record<string, unknown> {
  return { ...BENCH_MODELS[model].config, ...patch };
}

/** "SD3 medium MMDiT", or "SD3 medium MMDiT (2 of 24 layers)" when a patch cuts its depth. */
export function benchLabel(model: BenchModelId, patch?: Record<string, unknown>): string {
  const m = BENCH_MODELS[model];
  const full = m.config.num_layers;
  const layers = patch?.num_layers;
  return layers !== undefined && layers !== full ? `${m.label} (${String(layers)} of ${String(full)} layers)` : m.label;
}

/** The component directory the child writes (config.json + random weights); the parent deletes it afterwards. */
export function benchModelDir(workDir: string, model: BenchModelId): string {
  return join(workDir, `${model}-${BENCH_MODELS[model].kind === "unet" ? "unet" : "transformer"}`);
}

/** Every weight the model's graph builder reads, in request order. */
export function recordBenchWeights(m: BenchModel, json: Record<string, unknown>, dtype: "F16" | "F32"): RecordedWeight[] {
  const rec = createRecordingWeights({ dtype });
  if (m.kind === "unet") buildUnetGraph(unetConfigFromJson(json, `${m.label} config`), rec.source);
  else buildMmditGraph(sd3TransformerConfigFromJson(json, `${m.label} config`), rec.source);
  return rec.recorded();
}

/** Analytic GFLOP of one call (bench/flops.ts). */
export function denoiserGflop(m: BenchModel, json: Record<string, unknown>, s: DenoiserShape): number {
  const shape = { batch: s.batch, height: s.size / 8, width: s.size / 8, contextLength: m.contextLength };
  const count = m.kind === "unet" ? countUnetFlops(unetConfigFromJson(json), shape) : countMmditFlops(sd3TransformerConfigFromJson(json), shape);
  return count.total / 1e9;
}

/**
 * Bytes a session holds before its first call, the engine's own figure (RESIDENT_BYTES_PER_PARAM): float32 weights
 * from the graph cache whatever the stored dtype, so there is no larger peak while the session is created.
 */
export function sessionEstimateBytes(m: BenchModel, json: Record<string, unknown>): number {
  return recordBenchWeights(m, json, "F16").reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0) * RESIDENT_BYTES_PER_PARAM;
}

/**
 * A rough estimate of the activation memory of one call (onnxruntime's planner decides the real number).
 * UNet: attention is fused (MultiHeadAttention, flash attention on the CPU), so no score matrix is held: measured
 * 1.2 KB per image pixel per batch item on SD1.5 at 512², 0.23 KB on SDXL at 1024² (peak RSS above the open
 * session); the engine's UNET_ACTIVATION_BYTES_PER_PIXEL is used. MMDiT: the engine's own SD3 working memory estimate (src/models/sd3/memory.ts).
 */
export function activationEstimateBytes(m: BenchModel, json: Record<string, unknown>, s: DenoiserShape): number {
  if (m.kind === "mmdit") {
    const cfg = sd3TransformerConfigFromJson(json);
    return transformerWorkingBytes(cfg, { width: s.size, height: s.size, batch: s.batch, textTokens: m.contextLength });
  }
  return UNET_ACTIVATION_BYTES_PER_PIXEL * s.batch * s.size * s.size;
}

/** Runs one model's shapes in a child process, collecting its messages; a crash marks the remaining shapes failed. */
export function runDenoiserChild(spec: DenoiserRunSpec): Promise<{ setup?: DenoiserSetup; rows: DenoiserRow[] }> {
  const m = BENCH_MODELS[spec.model];
  const json = benchConfigJson(spec.model, spec.configPatch);
  const label = benchLabel(spec.model, spec.configPatch);
  const rows: DenoiserRow[] = [];
  let setup: DenoiserSetup | undefined;
  let maxRss = 0;
  let minAvailable = Number.POSITIVE_INFINITY;
  return new Promise((resolve) => {
    const child: ChildProcess = fork(import.meta.filename, [JSON.stringify(spec)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += String(d);
    });
    child.on("message", (msg: DenoiserRunMessage) => {
      if (msg.type === "rss") {
        maxRss = Math.max(maxRss, msg.bytes);
        if (msg.availableBytes !== undefined) minAvailable = Math.min(minAvailable, msg.availableBytes);
      } else if (msg.type === "setup") {
        setup = {
          model: label,
          params: msg.params,
          weightGiB: msg.weightBytes / GiB,
          weightWriteSeconds: msg.weightWriteSeconds,
          graphSeconds: msg.graphSeconds,
          sessionSeconds: msg.sessionSeconds,
          rssAfterSessionGiB: msg.rssAfterSessionBytes / GiB,
          peakRssAfterSessionGiB: msg.peakRssAfterSessionBytes / GiB,
        };
        console.error(`  ${label}: ${(msg.params / 1e6).toFixed(0)}M params written, graph built, session open (${msg.sessionSeconds.toFixed(1)} s)`);
      } else if (msg.type === "result") {
        const gflop = denoiserGflop(m, json, msg.shape);
        rows.push({
          model: label,
          size: msg.shape.size,
          batch: msg.shape.batch,
          status: "ok",
          secondsPerCall: msg.medianSeconds,
          times: msg.times,
          gflopPerCall: gflop,
          achievedGflops: gflop / msg.medianSeconds,
          peakRssGiB: msg.peakRssBytes / GiB,
        });
        console.error(`  ${label} ${msg.shape.size}px x${msg.shape.batch}: ${msg.medianSeconds.toFixed(2)} s/call`);
      } else {
        rows.push({ model: label, size: msg.shape.size, batch: msg.shape.batch, status: "skipped", reason: msg.reason, gflopPerCall: denoiserGflop(m, json, msg.shape) });
      }
    });
    child.on("exit", (code, signal) => {
      for (const s of spec.shapes) {
        if (rows.some((r) => r.size === s.size && r.batch === s.batch)) continue;
        const why =
          signal === "SIGKILL"
            ? `killed (SIGKILL: most likely out of memory) at RSS >= ${(maxRss / GiB).toFixed(2)} GiB, machine down to ${(minAvailable / GiB).toFixed(2)} GiB available`
            : `exited with ${signal ?? code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`;
        rows.push({ model: label, size: s.size, batch: s.batch, status: "failed", reason: why, gflopPerCall: denoiserGflop(m, json, s) });
      }
      resolve({ setup, rows });
    });
  });
}

function fill(shape: number[], f: (i: number) => number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = f(i);
  return { data, shape };
}

/** The graph's inputs at shape `s` (smooth pseudo-random values) and the name of its output. */
function feedsFor(m: BenchModel, json: Record<string, unknown>, s: DenoiserShape): { feeds: Record<string, HostTensor>; output: string } {
  const lat = s.size / 8;
  const context = fill([s.batch, m.contextLength, m.contextDim], (i) => Math.cos(i * 0.013));
  if (m.kind === "mmdit") {
    const cfg = sd3TransformerConfigFromJson(json);
    return {
      output: "sample",
      feeds: {
        hidden_states: fill([s.batch, cfg.inChannels, lat, lat], (i) => Math.sin(i * 0.618)),
        timestep: fill([s.batch], (i) => 999 - i * 100), // sigma * 1000
        encoder_hidden_states: context,
        pooled_projections: fill([s.batch, cfg.pooledProjectionDim], (i) => Math.sin(i * 0.07)),
      },
    };
  }
  const feeds: Record<string, HostTensor> = {
    sample: fill([s.batch, 4, lat, lat], (i) => Math.sin(i * 0.618)),
    timestep: fill([s.batch], (i) => 999 - i * 100),
    encoder_hidden_states: context,
  };
  if (m.pooledDim) {
    feeds.text_embeds = fill([s.batch, m.pooledDim], (i) => Math.sin(i * 0.07));
    feeds.time_ids = fill([s.batch, 6], (i) => [s.size, s.size, 0, 0, s.size, s.size][i % 6]);
  }
  return { feeds, output: "out_sample" };
}

async function childMain(spec: DenoiserRunSpec): Promise<void> {
  const send = (msg: DenoiserRunMessage) => process.send?.(msg);
  // If memory runs out, the kernel should pick this process, never a neighbour's.
  try {
    writeFileSync("/proc/self/oom_score_adj", "1000");
  } catch {
    // not Linux, or not allowed: nothing to do
  }
  const sampler = setInterval(() => send({ type: "rss", bytes: process.memoryUsage.rss(), availableBytes: memAvailableBytes() }), 1000);
  sampler.unref();
  const m = BENCH_MODELS[spec.model];
  const label = benchLabel(spec.model, spec.configPatch);
  const json = benchConfigJson(spec.model, spec.configPatch);
  const dir = benchModelDir(spec.workDir, spec.model);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(json, null, 2));

  let t0 = performance.now();
  const dtype = spec.weightDtype ?? "F16";
  const weights = recordBenchWeights(m, json, dtype);
  const params = weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  const weightBytes = writeRandomSafetensors(join(dir, "diffusion_pytorch_model.safetensors"), weights, { seed: 1, dtype, namespace: m.kind });
  const weightWriteSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const cacheDir = join(spec.workDir, "graphs");
  const prepared = m.kind === "unet" ? prepareUnetModel(dir, { cacheDir }) : prepareMmditModel(dir, { cacheDir });
  const graphSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await createSession(prepared.modelPath, { intraOpThreads: spec.intraOpThreads });
  const sessionSeconds = (performance.now() - t0) / 1000;
  send({
    type: "setup",
    params,
    weightBytes,
    weightWriteSeconds,
    graphSeconds,
    sessionSeconds,
    rssAfterSessionBytes: process.memoryUsage.rss(),
    peakRssAfterSessionBytes: process.resourceUsage().maxRSS * 1024,
  });

  try {
    for (const shape of spec.shapes) {
      const need = activationEstimateBytes(m, json, shape);
      const avail = memAvailableBytes();
      if (avail !== undefined && need > avail) {
        send({
          type: "skipped",
          shape,
          reason: `needs about ${(need / GiB).toFixed(1)} GiB more for activations, ${(avail / GiB).toFixed(1)} GiB available`,
        });
        continue;
      }
      const { feeds, output } = feedsFor(m, json, shape);
      await session.run(feeds); // warm-up: first-call allocations and kernel selection
      const times: number[] = [];
      for (let r = 0; r < shape.runs; r++) {
        const t = performance.now();
        const out = await session.run(feeds);
        times.push((performance.now() - t) / 1000);
        const y = out[output].data as Float32Array;
        if (!y.every(Number.isFinite)) throw new Error(`${label} ${shape.size}px produced non-finite values`);
      }
      const sorted = [...times].sort((a, b) => a - b);
      const mid = sorted.length / 2;
      const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
      send({ type: "result", shape, times, medianSeconds: median, peakRssBytes: process.resourceUsage().maxRSS * 1024 });
    }
  } finally {
    await session.release();
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  childMain(JSON.parse(process.argv[2]) as DenoiserRunSpec).catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}

/**
 * One UNet benchmark in its own process (so its peak RSS is its own and its memory is returned afterwards):
 * writes the published config and random weights (fp16 by default) for it, streamed tensor by tensor, builds the graph through
 * the real `prepareUnetModel` path, opens an onnxruntime session and times UNet calls at each requested shape.
 * Started by bench/index.ts with a JSON spec as argv[2]; reports each step over the IPC channel as it finishes.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRecordingWeights } from "../src/graph/weights.ts";
import { writeRandomSafetensors } from "../src/models/_shared/tiny-checkpoint.ts";
import { unetConfigFromJson, type UnetConfig } from "../src/models/_shared/unet-config.ts";
import { prepareUnetModel } from "../src/models/_shared/unet.ts";
import { buildUnetGraph } from "../src/models/_shared/unet.graph.ts";
import { createSession, type HostTensor } from "../src/runtime/session.ts";
import { BENCH_MODELS, type BenchModel } from "./configs.ts";

export interface UnetShape {
  /** Image size in pixels (square); the latent is size / 8. */
  size: number;
  batch: number;
  runs: number;
}

export interface UnetRunSpec {
  model: keyof typeof BENCH_MODELS;
  workDir: string;
  shapes: UnetShape[];
  intraOpThreads?: number;
  /** Stored dtype of the random weights (the graph casts F16 to float32); default F16, half the disk. */
  weightDtype?: "F16" | "F32";
}

export type UnetRunMessage =
  | { type: "setup"; params: number; weightBytes: number; weightWriteSeconds: number; graphSeconds: number; sessionSeconds: number; rssAfterSessionBytes: number }
  | { type: "result"; shape: UnetShape; times: number[]; medianSeconds: number; peakRssBytes: number }
  | { type: "skipped"; shape: UnetShape; reason: string }
  /** Sampled every second, so a run killed for memory still tells how far it got. */
  | { type: "rss"; bytes: number; availableBytes?: number };

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

/**
 * A rough estimate of the activation memory of one call (onnxruntime's planner and arena decide the real number):
 * ~11 KB per image pixel per batch item, calibrated on this benchmark's own runs (SD1.5 512x512x2: 4.4 GiB,
 * SDXL 512x512x2: 5.5 GiB above the RSS after session creation), plus one copy of the largest attention score
 * tensor [B, heads, N, N], which grows with the square of the pixel count.
 */
export function activationEstimateBytes(cfg: UnetConfig, s: UnetShape): number {
  let h = s.size / 8;
  let scores = 0;
  for (let i = 0; i < cfg.blockOutChannels.length; i++) {
    const attn = cfg.downBlockTypes[i] === "CrossAttnDownBlock2D";
    if (attn) scores = Math.max(scores, s.batch * cfg.heads[i] * (h * h) ** 2 * 4);
    h = Math.ceil(h / 2);
  }
  return 11_000 * s.batch * s.size * s.size + scores;
}

function fill(shape: number[], f: (i: number) => number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = f(i);
  return { data, shape };
}

function feedsFor(m: BenchModel, s: UnetShape): Record<string, HostTensor> {
  const lat = s.size / 8;
  const feeds: Record<string, HostTensor> = {
    sample: fill([s.batch, 4, lat, lat], (i) => Math.sin(i * 0.618)),
    timestep: fill([s.batch], (i) => 999 - i * 100),
    encoder_hidden_states: fill([s.batch, m.contextLength, m.contextDim], (i) => Math.cos(i * 0.013)),
  };
  if (m.pooledDim) {
    feeds.text_embeds = fill([s.batch, m.pooledDim], (i) => Math.sin(i * 0.07));
    feeds.time_ids = fill([s.batch, 6], (i) => [s.size, s.size, 0, 0, s.size, s.size][i % 6]);
  }
  return feeds;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as UnetRunSpec;
  const send = (msg: UnetRunMessage) => process.send?.(msg);
  // If memory runs out, the kernel should pick this process, never a neighbour's.
  try {
    writeFileSync("/proc/self/oom_score_adj", "1000");
  } catch {
    // not Linux, or not allowed: nothing to do
  }
  const sampler = setInterval(() => send({ type: "rss", bytes: process.memoryUsage.rss(), availableBytes: memAvailableBytes() }), 1000);
  sampler.unref();
  const m = BENCH_MODELS[spec.model];
  const cfg = unetConfigFromJson(m.unetConfig, `${m.label} config`);
  const unetDir = join(spec.workDir, `${m.id}-unet`);
  mkdirSync(unetDir, { recursive: true });
  writeFileSync(join(unetDir, "config.json"), JSON.stringify(m.unetConfig, null, 2));

  let t0 = performance.now();
  const dtype = spec.weightDtype ?? "F16";
  const rec = createRecordingWeights({ dtype });
  buildUnetGraph(cfg, rec.source);
  const weights = rec.recorded();
  const params = weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  const weightBytes = writeRandomSafetensors(join(unetDir, "diffusion_pytorch_model.safetensors"), weights, { seed: 1, dtype, namespace: "unet" });
  const weightWriteSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const prepared = prepareUnetModel(unetDir, { cacheDir: join(spec.workDir, "graphs") });
  const graphSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session = await createSession(prepared.modelPath, { intraOpThreads: spec.intraOpThreads });
  const sessionSeconds = (performance.now() - t0) / 1000;
  send({ type: "setup", params, weightBytes, weightWriteSeconds, graphSeconds, sessionSeconds, rssAfterSessionBytes: process.memoryUsage.rss() });

  try {
    for (const shape of spec.shapes) {
      const need = activationEstimateBytes(cfg, shape);
      const avail = memAvailableBytes();
      if (avail !== undefined && need > avail) {
        send({
          type: "skipped",
          shape,
          reason: `needs about ${(need / GiB).toFixed(1)} GiB more for activations, ${(avail / GiB).toFixed(1)} GiB available`,
        });
        continue;
      }
      const feeds = feedsFor(m, shape);
      await session.run(feeds); // warm-up: first-call allocations and kernel selection
      const times: number[] = [];
      for (let r = 0; r < shape.runs; r++) {
        const t = performance.now();
        const out = await session.run(feeds);
        times.push((performance.now() - t) / 1000);
        const y = out.out_sample.data as Float32Array;
        if (!y.every(Number.isFinite)) throw new Error(`${m.label} ${shape.size}px produced non-finite values`);
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
  main().catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}

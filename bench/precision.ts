/**
 * `npm run bench -- --only precision`: the opt-in int8 path against fp32 on one UNet call (random weights, the
 * published SD1.5 config, bench/configs.ts), in one child process so both sessions see the same machine: the same
 * inputs run through the fp32 graph and the int8 graph (src/graph/int8-weights.ts) alternately, so a neighbour's
 * load skews both alike. Reports seconds per call (median), the speed ratio, and the int8 output's deviation from
 * fp32 (relative L2 error, worst element as a fraction of fp32's largest, cosine similarity).
 *
 * `benchShapesPrecision`: the shipped default model (models/easel-shapes) generated at fp32 and at int8 for the
 * first evaluation prompts (tools/train-default-model/eval-prompts.json, same seeds), through the real Engine; the
 * pixel difference of each int8 image from its fp32 image. (Prompt-following accuracy under int8:
 * `node --import tsx tools/train-default-model/evaluate.ts --limit 100 --precision int8`.)
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Engine } from "../src/engine/engine.ts";
import { prepareUnetModel } from "../src/models/components/unet.ts";
import { writeRandomSafetensors } from "../src/models/testing/tiny-checkpoint.ts";
import { createSession, type HostTensor } from "../src/runtime/session.ts";
import { BENCH_MODELS } from "./configs.ts";
import { benchConfigJson, recordBenchWeights } from "./denoiser-run.ts";

export interface PrecisionBenchSpec {
  workDir: string;
  /** Image size (square) and batch of the UNet call. */
  size: number;
  batch: number;
  runs: number;
  threads?: number;
}

export interface PrecisionBenchResult {
  model: string;
  size: number;
  batch: number;
  fp32: { seconds: number[]; medianSeconds: number; graphSeconds: number; sessionSeconds: number; rssDeltaGiB: number };
  int8: { seconds: number[]; medianSeconds: number; graphSeconds: number; sessionSeconds: number; rssDeltaGiB: number };
  /** fp32 median / int8 median. */
  speedup: number;
  /** ||int8 - fp32||₂ / ||fp32||₂ over the whole output. */
  relativeError: number;
  /** max |int8 - fp32| / max |fp32|. */
  maxErrorOfPeak: number;
  cosine: number;
}

const GiB = 1024 ** 3;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length / 2;
  return s.length % 2 ? s[Math.floor(m)] : (s[m - 1] + s[m]) / 2;
};

/** Deviation of `y` from the reference `ref`. */
export function deviation(ref: Float32Array, y: Float32Array): { relativeError: number; maxErrorOfPeak: number; cosine: number } {
  let num = 0;
  let den = 0;
  let dot = 0;
  let yy = 0;
  let maxErr = 0;
  let peak = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = y[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    dot += ref[i] * y[i];
    yy += y[i] * y[i];
    maxErr = Math.max(maxErr, Math.abs(d));
    peak = Math.max(peak, Math.abs(ref[i]));
  }
  return { relativeError: Math.sqrt(num / den), maxErrorOfPeak: maxErr / peak, cosine: dot / Math.sqrt(den * yy) };
}

export function benchPrecision(spec: PrecisionBenchSpec): Promise<PrecisionBenchResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(import.meta.filename, [JSON.stringify(spec)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let result: PrecisionBenchResult | undefined;
    child.on("message", (m: PrecisionBenchResult) => {
      result = m;
    });
    child.on("exit", (code, signal) => (result ? resolve(result) : reject(new Error(`precision bench child exited with ${signal ?? code}`))));
  });
}

export function printPrecisionBench(r: PrecisionBenchResult, printTable: (header: string[], rows: string[][]) => void): void {
  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(`${r.model} ${r.size}x${r.size} batch ${r.batch}, random weights, int8 vs fp32 (calls alternated in one process)`);
  printTable(
    ["precision", "s/call", "runs", "graph build s", "session s", "session RSS GiB"],
    (["fp32", "int8"] as const).map((p) => [p, f(r[p].medianSeconds), r[p].seconds.map((s) => f(s)).join(", "), f(r[p].graphSeconds, 1), f(r[p].sessionSeconds, 1), f(r[p].rssDeltaGiB)]),
  );
  console.log(
    `  int8 is ${f(r.speedup)}x fp32's speed; output deviation: relative L2 error ${f(r.relativeError * 100)} %, ` +
      `worst element ${f(r.maxErrorOfPeak * 100)} % of fp32's peak, cosine ${r.cosine.toFixed(5)}`,
  );
}

export interface ShapesPrecisionResult {
  prompts: number;
  /** Mean |int8 - fp32| over every channel of every image, in 8-bit levels. */
  meanAbsLevels: number;
  /** Share of channel values that differ by more than 8 levels. */
  over8: number;
  maxAbsLevels: number;
  /** Median warm seconds per image. */
  fp32Seconds: number;
  int8Seconds: number;
}

export async function benchShapesPrecision(o: { workDir: string; prompts: number; threads?: number }): Promise<ShapesPrecisionResult> {
  const root = join(import.meta.dirname, "..");
  const modelDir = join(root, "models", "easel-shapes");
  const items = (JSON.parse(readFileSync(join(root, "tools", "train-default-model", "eval-prompts.json"), "utf8")) as { items: { prompt: string; seed: number }[] }).items.slice(0, o.prompts);
  const run = async (precision: "fp32" | "int8") => {
    const engine = new Engine({ executionProvider: "cpu", intraOpThreads: o.threads ?? 2, cacheDir: join(o.workDir, "shapes-graphs"), precision });
    try {
      await engine.run(modelDir, { prompt: "a red circle", n: 1, seed: 0 }); // graph build and sessions
      const images: Uint8Array[] = [];
      const seconds: number[] = [];
      for (const it of items) {
        const t = performance.now();
        const out = await engine.run(modelDir, { prompt: it.prompt, n: 1, seed: it.seed });
        seconds.push((performance.now() - t) / 1000);
        if (precision === "int8" && !out.warnings.some((w) => w.code === "W_QUANTIZED")) throw new Error("int8 result without W_QUANTIZED");
        images.push(out.images[0].rgb);
      }
      return { images, seconds: median(seconds) };
    } finally {
      await engine.close();
    }
  };
  const ref = await run("fp32");
  const q = await run("int8");
  let sum = 0;
  let over = 0;
  let max = 0;
  let count = 0;
  ref.images.forEach((a, k) => {
    const b = q.images[k];
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i] - b[i]);
      sum += d;
      if (d > 8) over++;
      max = Math.max(max, d);
    }
    count += a.length;
  });
  return { prompts: items.length, meanAbsLevels: sum / count, over8: over / count, maxAbsLevels: max, fp32Seconds: ref.seconds, int8Seconds: q.seconds };
}

export function printShapesPrecision(r: ShapesPrecisionResult): void {
  console.log(
    `easel-shapes, ${r.prompts} evaluation prompts, int8 vs fp32 images: mean |difference| ${r.meanAbsLevels.toFixed(2)} levels of 255, ` +
      `${(r.over8 * 100).toFixed(2)} % of values off by more than 8, worst ${r.maxAbsLevels}; warm ${(r.fp32Seconds * 1000).toFixed(0)} ms fp32, ` +
      `${(r.int8Seconds * 1000).toFixed(0)} ms int8 per image`,
  );
}

async function childMain(spec: PrecisionBenchSpec): Promise<void> {
  const m = BENCH_MODELS.sd15;
  const json = benchConfigJson("sd15");
  const dir = join(spec.workDir, "precision-unet");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(json, null, 2));
  writeRandomSafetensors(join(dir, "diffusion_pytorch_model.safetensors"), recordBenchWeights(m, json, "F16"), { seed: 1, dtype: "F16", namespace: "unet" });
  const cacheDir = join(spec.workDir, "precision-graphs");

  const open = async (precision: "fp32" | "int8") => {
    let t = performance.now();
    const prepared = prepareUnetModel(dir, { cacheDir, precision });
    const graphSeconds = (performance.now() - t) / 1000;
    const before = process.memoryUsage.rss();
    t = performance.now();
    const session = await createSession(prepared.modelPath, { intraOpThreads: spec.threads });
    return { session, graphSeconds, sessionSeconds: (performance.now() - t) / 1000, rssDeltaGiB: (process.memoryUsage.rss() - before) / GiB };
  };
  const fp32 = await open("fp32");
  const int8 = await open("int8");

  const lat = spec.size / 8;
  const fill = (shape: number[], f: (i: number) => number): HostTensor => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f(i);
    return { data, shape };
  };
  const feeds = {
    sample: fill([spec.batch, 4, lat, lat], (i) => Math.sin(i * 0.618)),
    timestep: fill([spec.batch], (i) => 999 - i * 100),
    encoder_hidden_states: fill([spec.batch, m.contextLength, m.contextDim], (i) => Math.cos(i * 0.013)),
  };
  const call = async (s: typeof fp32) => {
    const t = performance.now();
    const out = (await s.session.run(feeds, ["out_sample"])).out_sample.data as Float32Array;
    return { out, seconds: (performance.now() - t) / 1000 };
  };
  // Warm-up of each, then alternate.
  const ref = (await call(fp32)).out;
  const q = (await call(int8)).out;
  const times = { fp32: [] as number[], int8: [] as number[] };
  for (let r = 0; r < spec.runs; r++) {
    times.fp32.push((await call(fp32)).seconds);
    times.int8.push((await call(int8)).seconds);
  }
  await fp32.session.release();
  await int8.session.release();
  const row = (o: typeof fp32, s: number[]) => ({ seconds: s, medianSeconds: median(s), graphSeconds: o.graphSeconds, sessionSeconds: o.sessionSeconds, rssDeltaGiB: o.rssDeltaGiB });
  const result: PrecisionBenchResult = {
    model: m.label,
    size: spec.size,
    batch: spec.batch,
    fp32: row(fp32, times.fp32),
    int8: row(int8, times.int8),
    speedup: median(times.fp32) / median(times.int8),
    ...deviation(ref, q),
  };
  process.send?.(result);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  childMain(JSON.parse(process.argv[2]) as PrecisionBenchSpec).catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}

/**
 * `npm run bench -- --only e2e`: what a user waits for, end to end, on random weights with the published configs
 * (bench/configs.ts E2E_MODELS): SD-Turbo 512² 1 step, SDXL-Turbo 512² 4 steps, SDXL 1024² 30 steps, SD3 medium
 * 1024² 28 steps guidance 7 with int8 T5 (`--e2e-models sd3`).
 *
 * For each model a full diffusers directory is written (the tiny checkpoint's layout and tokenizers, then every
 * component replaced by its published config and random fp16 weights), and two child processes run it through the
 * real Engine (worker thread, family loader, graph cache, sessions, sampler, VAE decode):
 * - "cold": an empty graph cache, as after a fresh install: the first image (graph build and session creation
 *   included), then warm images; afterwards each component is timed alone on the cache's graphs at the request's
 *   shapes (text encoders once per prompt, the denoiser (UNet or SD3 transformer) once per step at the guidance
 *   batch, VAE decoder once per image), which gives the share of each part of a warm image;
 * - "cached": a second start on the same cache (as a restarted `easel serve`): its first image.
 * A model is skipped, with the command that runs it, when its estimated memory exceeds the limit (`--e2e-max-gib`,
 * default 13) or what the machine has available. The estimate: for the UNet models, float32 weights of every
 * component at the engine's resident bytes per parameter, plus the larger of the UNet's activations and one VAE
 * decode; for SD3, the engine's own SD3 memory plan (src/models/sd3/memory.ts) with every component resident: fp32
 * weights (int8 T5 at 1 byte per linear weight), plus the largest step's working memory at the default size.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { Engine } from "../src/engine/engine.ts";
import { createRecordingWeights, type WeightSource } from "../src/graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../src/models/components/clip-text.graph.ts";
import { prepareClipTextModel } from "../src/models/components/clip-text.ts";
import { sessionArgs } from "../src/models/components/component.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson } from "../src/models/components/t5-encoder.graph.ts";
import { prepareT5EncoderModel } from "../src/models/components/t5-encoder.ts";
import { buildUnetGraph } from "../src/models/components/unet.graph.ts";
import { prepareUnetModel } from "../src/models/components/unet.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "../src/models/components/vae.graph.ts";
import { prepareVaeDecoder } from "../src/models/components/vae.ts";
import { vaeConfigFromJson } from "../src/models/components/vae-config.ts";
import type { Checkpoint, CheckpointComponent } from "../src/models/pipeline/family.ts";
import { RESIDENT_BYTES_PER_PARAM, UNET_ACTIVATION_BYTES_PER_PIXEL, VAE_DECODE_BYTES_PER_PIXEL } from "../src/models/pipeline/limits.ts";
import { MAX_T5_SEQUENCE_LENGTH, sd3TransformerConfigFromJson } from "../src/models/sd3/config.ts";
import { planSd3Memory, sd3MemoryInput } from "../src/models/sd3/memory.ts";
import { buildMmditGraph } from "../src/models/sd3/mmdit.graph.ts";
import { prepareMmditModel } from "../src/models/sd3/mmdit.ts";
import { writeRandomSafetensors, writeTinyCheckpoint } from "../src/models/testing/tiny-checkpoint.ts";
import { createSession, type HostTensor, type ModelSession, type SessionTuning } from "../src/runtime/session.ts";
import { E2E_MODELS, type E2eBenchModel, type E2eSd3Model, type E2eUnetModel } from "./configs.ts";
import { memAvailableBytes } from "./denoiser-run.ts";

const GiB = 1024 ** 3;
/** StableDiffusion3Pipeline's default max_sequence_length: the T5 tokens of a request (src/models/sd3/pipeline.ts). */
const SD3_T5_TOKENS = 256;

export type E2eModelId = keyof typeof E2E_MODELS;

export interface E2eChildSpec {
  model: E2eModelId;
  modelDir: string;
  cacheDir: string;
  /** Warm images after the first; 0 for the "cached" start. */
  warmRuns: number;
  /** Time each component alone afterwards. */
  parts: boolean;
  /** Steps instead of the model's own. */
  steps?: number;
  memoryLimitGiB?: number;
  threads?: number;
  precision: "fp32" | "int8";
}

export interface E2eChildResult {
  firstSeconds: number;
  warmSeconds: number[];
  /** Seconds of each part of one image, measured alone; `unet` is the denoiser's steps (SD3: the transformer's). */
  parts?: { textEncoders: number; unet: number; vaeDecode: number };
  peakRssGiB: number;
  /**
   * Highest resident memory sampled (every 100 ms, from the main thread while the engine's worker runs) in each phase:
   * "load" from the start to the first step's callback (graph build, every session created, text encoding, one step), "first" the rest of
   * the first image, "warm" the warm images, "parts" the components timed alone. GiB.
   */
  phasePeaksGiB: Record<string, number>;
  warnings: string[];
}

export interface E2eRow {
  id: string;
  label: string;
  size: number;
  steps: number;
  guidance: number;
  precision: "fp32" | "int8";
  status: "ok" | "skipped" | "failed";
  reason?: string;
  /** Estimated resident bytes (e2eEstimateBytes: weights of every component + the largest working memory), GiB. */
  estimateGiB: number;
  writeSeconds?: number;
  cold?: E2eChildResult;
  cached?: E2eChildResult;
}

/** Parameters of every component the pipeline loads, from the builders' own weight lists. */
function componentParams(m: E2eUnetModel): number {
  const count = (record: (src: WeightSource) => void) => {
    const rec = createRecordingWeights({ dtype: "F16" });
    record(rec.source);
    return rec.recorded().reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  };
  let n = count((s) => buildUnetGraph(unetConfigFromJson(m.unet), s));
  n += count((s) => buildVaeDecoderGraph(vaeConfigFromJson(m.vae), s));
  for (const [, cfg] of m.textEncoders) n += count((s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s));
  return n;
}

/** The SD3 transformer's builder, as the tiny checkpoint writer takes it. */
const mmditBuilder = (json: Record<string, unknown>, s: WeightSource) => buildMmditGraph(sd3TransformerConfigFromJson(json), s);

type ComponentSpec = [name: string, className: string, config: Record<string, unknown>, record: (s: WeightSource) => void];

/** Each component folder of an SD3 row: model_index class, config and the builder that reads its weights. */
function sd3Components(m: E2eSd3Model): ComponentSpec[] {
  const clip = ([name, cfg]: [string, Record<string, unknown>]): ComponentSpec => [
    name,
    "CLIPTextModelWithProjection",
    cfg,
    (s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s),
  ];
  return [
    ...m.textEncoders.map(clip),
    ["text_encoder_3", "T5EncoderModel", m.t5, (s) => buildT5EncoderGraph(t5EncoderConfigFromJson(m.t5), s)],
    ["transformer", "SD3Transformer2DModel", m.transformer, (s) => mmditBuilder(m.transformer, s)],
    [
      "vae",
      "AutoencoderKL",
      m.vae,
      (s) => {
        buildVaeEncoderGraph(vaeConfigFromJson(m.vae), s);
        buildVaeDecoderGraph(vaeConfigFromJson(m.vae), s);
      },
    ],
  ];
}

/**
 * The checkpoint writeE2eCheckpoint writes for an SD3 row as loadCheckpoint describes it (configs, tensor names and
 * shapes from the builders' weight lists), without writing it: what the engine's memory plan reads.
 */
function describeSd3Checkpoint(m: E2eSd3Model): Checkpoint {
  const modelIndex: Record<string, unknown> = { _class_name: "StableDiffusion3Pipeline", scheduler: ["diffusers", m.scheduler._class_name] };
  const components: Record<string, CheckpointComponent> = {};
  for (const [name, className, config, record] of sd3Components(m)) {
    const rec = createRecordingWeights({ dtype: "F16" });
    record(rec.source);
    const weights = new Map(rec.recorded().map((w) => [w.name, { ...w, file: "", offset: 0, byteLength: 2 * w.shape.reduce((a, b) => a * b, 1) }]));
    const library = name.startsWith("text_encoder") ? "transformers" : "diffusers";
    modelIndex[name] = [library, className];
    components[name] = { name, library, className, dir: name, config, weights, weightFiles: [] };
  }
  const tokenizers: Checkpoint["tokenizers"] = {
    tokenizer: { dir: "tokenizer", className: "CLIPTokenizer" },
    tokenizer_2: { dir: "tokenizer_2", className: "CLIPTokenizer" },
    tokenizer_3: { dir: "tokenizer_3", className: "T5Tokenizer" },
  };
  for (const [name, t] of Object.entries(tokenizers)) modelIndex[name] = ["transformers", t.className];
  return {
    dir: m.id,
    pipelineClass: "StableDiffusion3Pipeline",
    modelIndex,
    components,
    schedulerClass: String(m.scheduler._class_name),
    schedulerConfig: m.scheduler,
    tokenizers,
  };
}

export function e2eEstimateBytes(m: E2eBenchModel): number {
  const pixels = m.size * m.size;
  if (m.family === "sd3") {
    // The plan the engine makes at load (src/models/sd3/pipeline.ts planSd3ForRuntime) on a machine where everything
    // fits, so every component stays resident: its estimated peak.
    const unlimited = { totalBytes: Number.MAX_SAFE_INTEGER, freeBytes: Number.MAX_SAFE_INTEGER };
    const size = { width: m.size, height: m.size };
    return planSd3Memory(sd3MemoryInput(describeSd3Checkpoint(m), unlimited, { t5Quantization: m.t5Quantization, size, maxT5Tokens: MAX_T5_SEQUENCE_LENGTH })).peakBytes;
  }
  const batch = m.guidance > 1 ? 2 : 1;
  return componentParams(m) * RESIDENT_BYTES_PER_PARAM + Math.max(UNET_ACTIVATION_BYTES_PER_PIXEL * batch * pixels, VAE_DECODE_BYTES_PER_PIXEL * pixels);
}

/** The model's diffusers directory: the tiny layout, every component replaced by its published config. */
export function writeE2eCheckpoint(m: E2eBenchModel, dir: string): void {
  writeTinyCheckpoint(dir, { family: m.family, seed: 1, dtype: "F16", ...(m.family === "sd3" ? { transformer: mmditBuilder } : {}) });
  const component = (name: string, config: Record<string, unknown>, file: string, record: (src: WeightSource) => void) => {
    const rec = createRecordingWeights({ dtype: "F16" });
    record(rec.source);
    rmSync(join(dir, name), { recursive: true, force: true });
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, "config.json"), JSON.stringify(config, null, 2));
    writeRandomSafetensors(join(dir, name, file), rec.recorded(), { seed: 1, dtype: "F16", namespace: name });
  };
  if (m.family === "sd3") {
    for (const [name, , config, record] of sd3Components(m)) {
      component(name, config, name.startsWith("text_encoder") ? "model.safetensors" : "diffusion_pytorch_model.safetensors", record);
    }
  } else {
    for (const [name, cfg] of m.textEncoders) component(name, cfg, "model.safetensors", (s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s));
    component("unet", m.unet, "diffusion_pytorch_model.safetensors", (s) => buildUnetGraph(unetConfigFromJson(m.unet), s));
    component("vae", m.vae, "diffusion_pytorch_model.safetensors", (s) => {
      buildVaeEncoderGraph(vaeConfigFromJson(m.vae), s);
      buildVaeDecoderGraph(vaeConfigFromJson(m.vae), s);
    });
  }
  writeFileSync(join(dir, "scheduler", "scheduler_config.json"), JSON.stringify(m.scheduler, null, 2));
  const index = JSON.parse(readFileSync(join(dir, "model_index.json"), "utf8")) as Record<string, unknown>;
  index.scheduler = ["diffusers", m.scheduler._class_name];
  writeFileSync(join(dir, "model_index.json"), JSON.stringify(index, null, 2));
}

function runChild(spec: E2eChildSpec): Promise<E2eChildResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(import.meta.filename, [JSON.stringify(spec)], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "pipe", "ipc"] });
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += String(d);
    });
    let result: E2eChildResult | undefined;
    child.on("message", (m: E2eChildResult) => {
      result = m;
    });
    child.on("exit", (code, signal) =>
      result ? resolve(result) : reject(new Error(`exited with ${signal ?? code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`)),
    );
  });
}

export interface E2eBenchOptions {
  workDir: string;
  models: E2eModelId[];
  maxGiB: number;
  /** Steps of every image instead of each model's own (the table marks the row). */
  steps?: number;
  /** engine.memoryLimitGiB of the engine under test. */
  memoryLimitGiB?: number;
  /** Only the first image after a start (no per-part timing, no second start). */
  firstOnly?: boolean;
  threads?: number;
  /** Also run SD-Turbo with precision "int8". */
  int8: boolean;
  /** Warm images timed after the first (2; `--quick` 1). */
  warmRuns: number;
  log: (line: string) => void;
}

export async function benchE2e(o: E2eBenchOptions): Promise<E2eRow[]> {
  const rows: E2eRow[] = [];
  const plans: [E2eModelId, "fp32" | "int8"][] = o.models.map((id) => [id, "fp32"]);
  if (o.int8 && o.models.includes("sd-turbo")) plans.splice(1, 0, ["sd-turbo", "int8"]);
  const written = new Map<E2eModelId, number>();
  for (const [index, [id, precision]] of plans.entries()) {
    const m = o.steps ? { ...E2E_MODELS[id], steps: o.steps } : E2E_MODELS[id];
    const need = e2eEstimateBytes(m) * (precision === "int8" ? 0.5 : 1);
    const row: E2eRow = { id, label: m.label, size: m.size, steps: m.steps, guidance: m.guidance, precision, status: "ok", estimateGiB: need / GiB };
    rows.push(row);
    const avail = memAvailableBytes();
    if (need > o.maxGiB * GiB || (avail !== undefined && need > avail)) {
      row.status = "skipped";
      row.reason =
        `needs about ${(need / GiB).toFixed(1)} GiB (limit ${o.maxGiB} GiB, ${((avail ?? 0) / GiB).toFixed(1)} GiB available); ` +
        `run it with: npm run bench -- --only e2e --e2e-models ${id} --e2e-max-gib ${Math.ceil(need / GiB) + 1}`;
      continue;
    }
    const modelDir = join(o.workDir, `e2e-${id}`);
    const cacheDir = join(o.workDir, `e2e-${id}-${precision}-graphs`);
    try {
      if (!written.has(id)) {
        o.log(`  ${m.label}: writing random weights ...`);
        const t = performance.now();
        writeE2eCheckpoint(m, modelDir);
        written.set(id, (performance.now() - t) / 1000);
      }
      row.writeSeconds = written.get(id);
      o.log(`  ${m.label} ${precision}: first start (empty graph cache) ...`);
      row.cold = await runChild({ model: id, modelDir, cacheDir, warmRuns: o.warmRuns, parts: !o.firstOnly, steps: o.steps, memoryLimitGiB: o.memoryLimitGiB, threads: o.threads, precision });
      if (!o.firstOnly) o.log(`  ${m.label} ${precision}: second start (graph cache) ...`);
      if (!o.firstOnly) row.cached = await runChild({ model: id, modelDir, cacheDir, warmRuns: 0, parts: false, steps: o.steps, memoryLimitGiB: o.memoryLimitGiB, threads: o.threads, precision });
      // Each row as soon as it is measured: a long run stopped later still leaves its finished rows.
      o.log(`  ${m.label} ${precision}: ${JSON.stringify({ cold: row.cold, cached: row.cached })}`);
    } catch (e) {
      row.status = "failed";
      row.reason = (e as Error).message;
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
      if (!plans.slice(index + 1).some(([other]) => other === id)) rmSync(modelDir, { recursive: true, force: true });
    }
  }
  return rows;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length / 2;
  return s.length % 2 ? s[Math.floor(m)] : (s[m - 1] + s[m]) / 2;
};

/**
 * The server's peak: the highest sample while the engine loaded and generated ("load", "first", "warm"). The "parts"
 * phase is the bench's own timing of each component after the engine closed, not something a server does.
 */
const enginePeak = (c: E2eChildResult) => Math.max(0, ...Object.entries(c.phasePeaksGiB).filter(([k]) => k !== "parts").map(([, v]) => v));

const phaseList = (p: Record<string, number> | undefined) =>
  p ? Object.entries(p).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") : "-";

export function printE2eBench(rows: E2eRow[], printTable: (header: string[], rows: string[][]) => void): void {
  const f = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
  const pct = (x: number | undefined, total: number | undefined) => (x === undefined || !total ? "-" : `${((100 * x) / total).toFixed(0)}%`);
  console.log("end to end, random weights with the published configs (seconds per image; text encoders and VAE decode included)");
  printTable(
    ["model", "precision", "size", "steps", "warm s/image", "first image s", "x warm", "2nd start s", "x warm", "text enc", "denoiser", "vae decode", "other", "engine peak RSS GiB", "note"],
    rows.map((r) => {
      if (r.status !== "ok" || !r.cold) return [r.label, r.precision, `${r.size}`, `${r.steps}`, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", `${r.status}: ${r.reason}`];
      const warm = r.cold.warmSeconds.length > 0 ? median(r.cold.warmSeconds) : undefined;
      const p = r.cold.parts;
      const other = p && warm !== undefined ? warm - p.textEncoders - p.unet - p.vaeDecode : undefined;
      const ratio = (x: number | undefined) => (x === undefined || warm === undefined ? undefined : x / warm);
      return [
        r.label,
        r.precision,
        `${r.size}`,
        `${r.steps}`,
        f(warm, 2),
        f(r.cold.firstSeconds),
        f(ratio(r.cold.firstSeconds)),
        f(r.cached?.firstSeconds),
        f(ratio(r.cached?.firstSeconds)),
        pct(p?.textEncoders, warm),
        pct(p?.unet, warm),
        pct(p?.vaeDecode, warm),
        pct(other !== undefined ? Math.max(0, other) : undefined, warm),
        f(Math.max(enginePeak(r.cold), r.cached ? enginePeak(r.cached) : 0), 2),
        `warm ${r.cold.warmSeconds.map((s) => s.toFixed(2)).join(", ") || "-"}; weights written in ${f(r.writeSeconds)} s; ` +
          `warnings ${r.cold.warnings.map((w) => w.split(":")[0]).join(", ") || "none"}; ` +
          `peak GiB by phase: first start ${phaseList(r.cold.phasePeaksGiB)}; 2nd start ${phaseList(r.cached?.phasePeaksGiB)}; estimate ${f(r.estimateGiB, 2)}`,
      ];
    }),
  );
  console.log("  first image: a new process's Engine from nothing to the first image (graph build from the checkpoint, sessions, the request);");
  console.log("  2nd start: the same with the graph cache of the first; shares: each part timed alone at the request's shapes, other = the rest of a warm image");
  console.log("  engine peak RSS: the highest resident memory sampled while the engine loaded and generated, in either start (the note lists each phase; 'parts' is the bench timing components alone after the engine closed)");
}

// ---------------------------------------------------------------------------------------------------------------
// Child

function fill(shape: number[], f: (i: number) => number): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = f(i);
  return { data, shape };
}

async function timeOnce(session: ModelSession, feeds: Record<string, HostTensor>): Promise<number> {
  await session.run(feeds); // warm-up
  const t = performance.now();
  await session.run(feeds);
  return (performance.now() - t) / 1000;
}

/** Each component alone on the cache's graphs, one at a time, at the shapes the request used. */
async function timeParts(spec: E2eChildSpec, m: E2eBenchModel, threads: number): Promise<NonNullable<E2eChildResult["parts"]>> {
  const opts = { cacheDir: spec.cacheDir, executionProvider: "cpu" as const };
  const open = (path: string, tuning?: SessionTuning) => createSession(path, { intraOpThreads: threads, ...tuning });
  const batch = m.guidance > 1 ? 2 : 1;
  const prompts = batch; // the pipeline encodes the prompt, and the negative prompt under guidance
  let textEncoders = 0;
  const contexts: number[] = [];
  const projections: number[] = [];
  for (const [name, cfg] of m.textEncoders) {
    const s = await open(prepareClipTextModel(join(spec.modelDir, name), opts).modelPath);
    try {
      const ids = { data: BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i === 0 ? 0 : i < 8 ? 300 + i : 2)), shape: [1, 77] };
      textEncoders += (await timeOnce(s, { input_ids: ids })) * prompts;
    } finally {
      await s.release();
    }
    contexts.push(Number(cfg.hidden_size));
    projections.push(Number(cfg.projection_dim));
  }
  if (m.family === "sd3") {
    // The pipeline's T5 graph (int8 when engine.t5Quantization is), so the cache's one is opened.
    const t5Model = prepareT5EncoderModel(join(spec.modelDir, "text_encoder_3"), {
      ...opts,
      maxSequenceLength: MAX_T5_SEQUENCE_LENGTH,
      weightQuantization: m.t5Quantization === "int8" ? "int8" : undefined,
    });
    const s = await open(t5Model.modelPath);
    try {
      // A few words, </s> (1), then padding (0), as the T5 tokenizer fills max_sequence_length.
      const ids = { data: BigInt64Array.from({ length: SD3_T5_TOKENS }, (_, i) => BigInt(i < 7 ? 100 + i : i === 7 ? 1 : 0)), shape: [1, SD3_T5_TOKENS] };
      textEncoders += (await timeOnce(s, { input_ids: ids })) * prompts;
    } finally {
      await s.release();
    }
  }
  const lat = m.size / 8;
  const channels = vaeConfigFromJson(m.vae).latentChannels;
  let denoiserPath: string;
  let feeds: Record<string, HostTensor>;
  if (m.family === "sd3") {
    // The transformer's inputs (src/models/sd3/pipeline.ts): the CFG batch of latents, sigma * 1000, the joint
    // context (77 CLIP + T5 tokens, joint_attention_dim wide) and both CLIPs' pooled projections.
    denoiserPath = prepareMmditModel(join(spec.modelDir, "transformer"), opts).modelPath;
    feeds = {
      hidden_states: fill([batch, channels, lat, lat], (i) => Math.sin(i * 0.618)),
      timestep: fill([batch], () => 1000),
      encoder_hidden_states: fill([batch, 77 + SD3_T5_TOKENS, Number(m.transformer.joint_attention_dim)], (i) => Math.cos(i * 0.013)),
      pooled_projections: fill([batch, projections.reduce((a, b) => a + b, 0)], (i) => Math.sin(i * 0.07)),
    };
  } else {
    denoiserPath = prepareUnetModel(join(spec.modelDir, "unet"), { ...opts, precision: spec.precision }).modelPath;
    feeds = {
      sample: fill([batch, channels, lat, lat], (i) => Math.sin(i * 0.618)),
      timestep: fill([batch], () => 999),
      encoder_hidden_states: fill([batch, 77, m.family === "sdxl" ? contexts.reduce((a, b) => a + b, 0) : contexts[0]], (i) => Math.cos(i * 0.013)),
    };
    if (m.family === "sdxl") {
      feeds.text_embeds = fill([batch, projections[projections.length - 1]], (i) => Math.sin(i * 0.07));
      feeds.time_ids = fill([batch, 6], (i) => [m.size, m.size, 0, 0, m.size, m.size][i % 6]);
    }
  }
  const denoiserSession = await open(denoiserPath);
  let unet: number;
  try {
    unet = (await timeOnce(denoiserSession, feeds)) * m.steps;
  } finally {
    await denoiserSession.release();
  }
  const vae = await open(...sessionArgs(prepareVaeDecoder(join(spec.modelDir, "vae"), opts)));
  try {
    const vaeDecode = await timeOnce(vae, { latent: fill([1, channels, lat, lat], (i) => Math.sin(i * 0.3)) });
    return { textEncoders, unet, vaeDecode };
  } finally {
    await vae.release();
  }
}

async function childMain(spec: E2eChildSpec): Promise<void> {
  const m = spec.steps ? { ...E2E_MODELS[spec.model], steps: spec.steps } : E2E_MODELS[spec.model];
  try {
    writeFileSync("/proc/self/oom_score_adj", "1000");
  } catch {
    // not Linux, or not allowed
  }
  const threads = spec.threads ?? cpus().length; // as easel serve sets it
  const engine = new Engine({
    executionProvider: "cpu",
    intraOpThreads: threads,
    cacheDir: spec.cacheDir,
    precision: spec.precision,
    ...(m.family === "sd3" ? { t5Quantization: m.t5Quantization } : {}),
    ...(spec.memoryLimitGiB ? { memoryLimitBytes: spec.memoryLimitGiB * GiB } : {}),
  });
  const params = { prompt: "a red cube on a blue floor", n: 1, width: m.size, height: m.size, steps: m.steps, guidanceScale: m.guidance, seed: 1 };
  const phasePeaks: Record<string, number> = {};
  let phase = "load";
  const sample = () => {
    phasePeaks[phase] = Math.max(phasePeaks[phase] ?? 0, process.memoryUsage.rss() / GiB);
  };
  const sampler = setInterval(sample, 100);
  let t = performance.now();
  const first = await engine.run(spec.modelDir, params, {
    onStep: () => {
      if (phase === "load") {
        sample();
        phase = "first";
      }
    },
  });
  sample();
  phase = "warm";
  const firstSeconds = (performance.now() - t) / 1000;
  const warmSeconds: number[] = [];
  for (let i = 0; i < spec.warmRuns; i++) {
    t = performance.now();
    await engine.run(spec.modelDir, { ...params, seed: 2 + i });
    warmSeconds.push((performance.now() - t) / 1000);
  }
  sample();
  await engine.close();
  phase = "parts";
  const parts = spec.parts ? await timeParts(spec, m, threads) : undefined;
  sample();
  clearInterval(sampler);
  const result: E2eChildResult = {
    firstSeconds,
    warmSeconds,
    parts,
    peakRssGiB: (process.resourceUsage().maxRSS * 1024) / GiB,
    phasePeaksGiB: Object.fromEntries(Object.entries(phasePeaks).map(([k, v]) => [k, Math.round(v * 100) / 100])),
    warnings: first.warnings.map((w) => `${w.code}: ${w.message}`),
  };
  process.send?.(result, () => process.exit(0));
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  childMain(JSON.parse(process.argv[2]) as E2eChildSpec).catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}

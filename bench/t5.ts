/**
 * T5 encoder benchmark, fp32 vs weight-only int8 linears (src/models/components/t5-int8.ts): random fp16 weights for a
 * T5 v1.1 config written tensor by tensor, both graphs built through the real `prepareT5EncoderModel` path, then
 * one child process per mode (so each peak RSS is its own) opens the session and times encodes of one prompt of
 * `tokens` tokens (median after a warm-up). Also reports how far int8's output is from fp32's.
 *
 * The default config is mid-size (d_model 1024, 8 layers, T5 v1.1-large widths): the real T5-XXL (4.76B
 * parameters, 19 GB in fp32) does not fit a 24 GiB machine in fp32 beside other processes. `--config xxl` runs the
 * published XXL shape where there is memory for it.
 *
 * Run alone: `node --import tsx bench/t5.ts [--config mid|xxl] [--tokens 256] [--runs 3] [--threads N]`;
 * `npm run bench -- --only t5` calls benchT5() from bench/index.ts.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRecordingWeights } from "../src/graph/weights.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson } from "../src/models/components/t5-encoder.graph.ts";
import { prepareT5EncoderModel } from "../src/models/components/t5-encoder.ts";
import { T5_LINEAR_RE } from "../src/models/components/t5-int8.ts";
import { writeRandomSafetensors } from "../src/models/testing/tiny-checkpoint.ts";
import { createSession } from "../src/runtime/session.ts";
import { memAvailableBytes } from "./denoiser-run.ts";

const GiB = 1024 ** 3;

/** transformers T5Config fields (T5 v1.1: gated-gelu, untied, no biases). */
export const T5_BENCH_CONFIGS = {
  /** T5 v1.1-large widths, 8 of its 24 layers: ~136M parameters. */
  mid: { d_model: 1024, d_kv: 64, d_ff: 2816, num_layers: 8, num_heads: 16, vocab_size: 32128, feed_forward_proj: "gated-gelu" },
  /** google/t5-v1_1-xxl encoder, as SD3's text_encoder_3: 4.76B parameters. */
  xxl: { d_model: 4096, d_kv: 64, d_ff: 10240, num_layers: 24, num_heads: 64, vocab_size: 32128, feed_forward_proj: "gated-gelu" },
} as const;
export type T5BenchConfig = keyof typeof T5_BENCH_CONFIGS;

export interface T5BenchOptions {
  config?: T5BenchConfig;
  /** Prompt length in tokens (SD3's default max_sequence_length is 256). */
  tokens?: number;
  runs?: number;
  threads?: number;
  /** Scratch directory (weights, graphs, outputs); default a new temporary one, deleted afterwards. */
  workDir?: string;
}

interface ChildSpec {
  mode: "fp32" | "int8";
  modelPath: string;
  outFile: string;
  tokens: number;
  runs: number;
  vocab: number;
  threads?: number;
}

type ChildMessage = { type: "result"; times: number[]; medianSeconds: number; sessionSeconds: number; rssAfterSessionBytes: number; peakRssBytes: number };

export interface T5BenchRow {
  mode: "fp32" | "int8";
  status: "ok" | "skipped" | "failed";
  reason?: string;
  medianSeconds?: number;
  times?: number[];
  sessionSeconds?: number;
  rssAfterSessionGiB?: number;
  peakRssGiB?: number;
}

export interface T5BenchResult {
  config: T5BenchConfig;
  params: number;
  tokens: number;
  /** Weight bytes as resident: fp32 = params x 4; int8 = linears x 1 (+ row scales) and the rest x 4. */
  fp32WeightGiB: number;
  int8WeightGiB: number;
  graphSeconds: { fp32: number; int8: number };
  rows: T5BenchRow[];
  /** max |int8 - fp32| / max |fp32| and ||int8 - fp32|| / ||fp32|| over last_hidden_state, when both ran. */
  int8MaxAbsDiffRel?: number;
  int8RelL2?: number;
  note: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length / 2;
  return s.length % 2 ? s[Math.floor(m)] : (s[m - 1] + s[m]) / 2;
}

/** Runs one mode in a child process; a crash or kill becomes a failed row. */
function runChild(spec: ChildSpec): Promise<T5BenchRow> {
  return new Promise((resolve) => {
    const child: ChildProcess = fork(import.meta.filename, ["--child", JSON.stringify(spec)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "pipe", "ipc"],
    });
    let stderr = "";
    let row: T5BenchRow | undefined;
    child.stderr?.on("data", (d) => {
      stderr += String(d);
    });
    child.on("message", (m: ChildMessage) => {
      row = {
        mode: spec.mode,
        status: "ok",
        medianSeconds: m.medianSeconds,
        times: m.times,
        sessionSeconds: m.sessionSeconds,
        rssAfterSessionGiB: m.rssAfterSessionBytes / GiB,
        peakRssGiB: m.peakRssBytes / GiB,
      };
    });
    child.on("exit", (code, signal) => {
      if (row) return resolve(row);
      const why = signal === "SIGKILL" ? "killed (SIGKILL: most likely out of memory)" : `exited with ${signal ?? code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`;
      resolve({ mode: spec.mode, status: "failed", reason: why });
    });
  });
}

async function childMain(spec: ChildSpec): Promise<void> {
  try {
    writeFileSync("/proc/self/oom_score_adj", "1000"); // if memory runs out, this process goes, never a neighbour
  } catch {
    // not Linux, or not allowed
  }
  let t = performance.now();
  const session = await createSession(spec.modelPath, { intraOpThreads: spec.threads });
  const sessionSeconds = (performance.now() - t) / 1000;
  const rssAfterSessionBytes = process.memoryUsage.rss();
  try {
    // A fixed pseudo prompt: ids spread over the vocabulary, ending with </s> (1) as the tokenizer does.
    const ids = BigInt64Array.from({ length: spec.tokens }, (_, i) => BigInt(i === spec.tokens - 1 ? 1 : 2 + ((i * 7919) % (spec.vocab - 2))));
    const feeds = { input_ids: { data: ids, shape: [1, spec.tokens] } };
    await session.run(feeds, ["last_hidden_state"]); // warm-up
    const times: number[] = [];
    let out: Float32Array | undefined;
    for (let r = 0; r < spec.runs; r++) {
      t = performance.now();
      const o = await session.run(feeds, ["last_hidden_state"]);
      times.push((performance.now() - t) / 1000);
      out = o.last_hidden_state.data as Float32Array;
    }
    if (!out?.every(Number.isFinite)) throw new Error(`${spec.mode}: non-finite output`);
    writeFileSync(spec.outFile, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    process.send?.({
      type: "result",
      times,
      medianSeconds: median(times),
      sessionSeconds,
      rssAfterSessionBytes,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    } satisfies ChildMessage);
  } finally {
    await session.release();
  }
}

/** fp32 vs int8 T5 encode: writes random weights, builds both graphs, times each mode in its own process. */
export async function benchT5(o: T5BenchOptions = {}): Promise<T5BenchResult> {
  const configName = o.config ?? "mid";
  const json = T5_BENCH_CONFIGS[configName];
  const tokens = o.tokens ?? 256;
  const runs = o.runs ?? 3;
  const own = o.workDir === undefined;
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), "easel-bench-t5-"));
  try {
    const dir = join(workDir, `t5-${configName}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ architectures: ["T5EncoderModel"], ...json }, null, 2));
    const cfg = t5EncoderConfigFromJson({ ...json });
    const rec = createRecordingWeights({ dtype: "F16" });
    buildT5EncoderGraph(cfg, rec.source);
    const weights = rec.recorded();
    let params = 0;
    let int8Bytes = 0;
    for (const w of weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      params += n;
      int8Bytes += T5_LINEAR_RE.test(w.name) && w.shape.length === 2 ? n + w.shape[0] * 5 : n * 4;
    }
    console.error(`  t5 ${configName}: writing ${(params / 1e6).toFixed(0)}M random fp16 parameters ...`);
    writeRandomSafetensors(join(dir, "model.safetensors"), weights, { seed: 3, dtype: "F16", namespace: "t5" });

    const cacheDir = join(workDir, "graphs");
    const graphSeconds = { fp32: 0, int8: 0 };
    const paths = { fp32: "", int8: "" };
    for (const mode of ["fp32", "int8"] as const) {
      const t = performance.now();
      paths[mode] = prepareT5EncoderModel(dir, { cacheDir, maxSequenceLength: 512, weightQuantization: mode === "int8" ? "int8" : undefined }).modelPath;
      graphSeconds[mode] = (performance.now() - t) / 1000;
    }

    const rows: T5BenchRow[] = [];
    for (const mode of ["fp32", "int8"] as const) {
      // fp16 pages read while the session folds its casts, plus the resident weights, plus activations.
      const need = params * 2 + (mode === "fp32" ? params * 4 : int8Bytes) + 0.5 * GiB;
      const avail = memAvailableBytes();
      if (avail !== undefined && need > avail) {
        rows.push({ mode, status: "skipped", reason: `needs about ${(need / GiB).toFixed(1)} GiB, ${(avail / GiB).toFixed(1)} GiB available` });
        continue;
      }
      console.error(`  t5 ${configName} ${mode}: ${tokens} tokens x ${runs} runs ...`);
      rows.push(await runChild({ mode, modelPath: paths[mode], outFile: join(workDir, `${mode}.bin`), tokens, runs, vocab: cfg.vocabSize, threads: o.threads }));
    }

    let int8MaxAbsDiffRel: number | undefined;
    let int8RelL2: number | undefined;
    if (rows.every((r) => r.status === "ok")) {
      const read = (m: string) => {
        const b = readFileSync(join(workDir, `${m}.bin`));
        return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      };
      const a = read("fp32");
      const b = read("int8");
      let maxRef = 0;
      let maxDiff = 0;
      let sumRef = 0;
      let sumDiff = 0;
      for (let i = 0; i < a.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(a[i]));
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        sumRef += a[i] * a[i];
        sumDiff += (a[i] - b[i]) ** 2;
      }
      int8MaxAbsDiffRel = maxDiff / maxRef;
      int8RelL2 = Math.sqrt(sumDiff / sumRef);
    }
    return {
      config: configName,
      params,
      tokens,
      fp32WeightGiB: (params * 4) / GiB,
      int8WeightGiB: int8Bytes / GiB,
      graphSeconds,
      rows,
      int8MaxAbsDiffRel,
      int8RelL2,
      note:
        configName === "mid"
          ? "mid-size T5 (d_model 1024, 8 layers); the real T5-XXL (4.76B parameters, 19 GB fp32) does not fit a 24 GiB machine in fp32 beside other processes"
          : "T5-XXL encoder shape (google/t5-v1_1-xxl), random weights",
    };
  } finally {
    if (own) rmSync(workDir, { recursive: true, force: true });
  }
}

export function printT5Bench(r: T5BenchResult): void {
  const f = (x: number | undefined, d = 2) => (x === undefined ? "-" : x.toFixed(d));
  console.log(`T5 encoder ${r.config}: ${(r.params / 1e6).toFixed(0)}M params, ${r.tokens} tokens; weights fp32 ${f(r.fp32WeightGiB)} GiB, int8 ${f(r.int8WeightGiB)} GiB (${r.note})`);
  for (const row of r.rows) {
    console.log(
      row.status === "ok"
        ? `  ${row.mode}: ${f(row.medianSeconds, 3)} s/encode (runs ${row.times?.map((t) => t.toFixed(3)).join(", ")}), session ${f(row.sessionSeconds, 1)} s, ` +
            `RSS after session ${f(row.rssAfterSessionGiB)} GiB, peak RSS ${f(row.peakRssGiB)} GiB`
        : `  ${row.mode}: ${row.status}: ${row.reason}`,
    );
  }
  const [a, b] = r.rows;
  if (a?.medianSeconds && b?.medianSeconds) console.log(`  int8 / fp32 encode time: ${f(b.medianSeconds / a.medianSeconds)}x`);
  if (r.int8MaxAbsDiffRel !== undefined) {
    console.log(
      `  int8 vs fp32 last_hidden_state: max |diff| / max |fp32| = ${r.int8MaxAbsDiffRel.toExponential(2)}, ` +
        `||diff|| / ||fp32|| = ${r.int8RelL2?.toExponential(2)} (random weights)`,
    );
  }
}

function usage(error?: string): never {
  if (error) console.error(error);
  console.error("usage: node --import tsx bench/t5.ts [--config mid|xxl] [--tokens N] [--runs N] [--threads N]");
  process.exit(error ? 2 : 0);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--child") return childMain(JSON.parse(argv[1]) as ChildSpec);
  const o: T5BenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const int = (name: string, min: number, max: number) => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < min || n > max) usage(`${name} must be an integer in [${min}, ${max}], got ${argv[i]}`);
      return n;
    };
    if (a === "--config") {
      const c = argv[++i];
      if (c !== "mid" && c !== "xxl") usage(`--config must be mid or xxl, got ${c}`);
      o.config = c;
    } else if (a === "--tokens") o.tokens = int("--tokens", 1, 512);
    else if (a === "--runs") o.runs = int("--runs", 1, 100);
    else if (a === "--threads") o.threads = int("--threads", 1, 1024);
    else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument ${a}`);
  }
  const r = await benchT5(o);
  printT5Bench(r);
  console.log(`BENCH_T5_JSON ${JSON.stringify(r)}`);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  });
}

/**
 * Memory plan for an SD3 checkpoint: which components stay resident and which are opened for their step of a
 * request and released right after it ("on demand"), from the components' fp32 weight sizes and the machine's
 * memory. fp32 T5-XXL alone is ~19 GB, so on a 24 GiB machine the default plan loads T5 (and what else must give
 * way) per request; int8 T5 (../components/t5-int8.ts) is used only when configured, and both choices are reported
 * as warnings with every result.
 *
 * The model (an estimate, stated in every message): a request runs four steps in order — CLIP encode, T5 encode,
 * denoise, VAE decode — and one component belongs to each. Peak = resident weights + the largest step's
 * on-demand weights plus its working memory, plus a fixed reserve for the process and onnxruntime. Weights count
 * elements x 4 bytes whatever the stored dtype (the graphs fold fp16/bf16 casts into fp32 initializers on CPU);
 * int8 T5 counts its linear weights at 1 byte plus a float scale per row. Working memory is taken at the model's
 * default size with the CFG batch (2); attention is fused everywhere (no score matrices), so the transformer's
 * hidden streams and the VAE decoder's full-resolution feature maps are what count.
 */
import { EaselError } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import { T5_LINEAR_RE } from "../components/t5-int8.ts";
import { VAE_DECODE_BYTES_PER_PIXEL } from "../pipeline/limits.ts";
import type { Checkpoint } from "../pipeline/family.ts";

export const SD3_COMPONENTS = ["clip", "t5", "transformer", "vae"] as const;
export type Sd3Component = (typeof SD3_COMPONENTS)[number];
export type Residency = "resident" | "on-demand";
export type T5Quantization = "none" | "int8";

const GiB = 1024 ** 3;
/** Node, tokenizers, onnxruntime's arenas and the rest of the process: kept free beyond the estimate. */
export const DEFAULT_RESERVE_BYTES = 1 * GiB;

export interface Sd3MemoryInput {
  /** fp32 bytes (elements x 4) of each component's weights; `t5` absent when the checkpoint has none. */
  weights: { clip: number; t5?: number; transformer: number; vae: number };
  /** Bytes of T5 with int8 linear weights. */
  t5Int8Weights?: number;
  /** Working memory (activations) of one request's step for each component. */
  working: Record<Sd3Component, number>;
  /** os.totalmem() and os.freemem() (MemAvailable on Linux) at load time. */
  totalBytes: number;
  freeBytes: number;
  reserveBytes?: number;
  t5Quantization: T5Quantization;
}

export interface Sd3MemoryPlan {
  modes: Record<Sd3Component, Residency>;
  /** How T5 runs, or "unavailable" when it does not fit even loaded per request (requests must use no_t5). */
  t5: "fp32" | "int8" | "unavailable" | "absent";
  /** Estimated peak of this plan and the bytes it had to fit in (free - reserve). */
  peakBytes: number;
  budgetBytes: number;
  /** Weight bytes opened and released per request. */
  reloadBytes: number;
  /** What the plan decided, for every result while anything is not resident (code W_MEMORY_PLAN). */
  warning?: Warning;
  /** The error a request that needs T5 gets when `t5` is "unavailable". */
  t5Error?: EaselError;
}

const gib = (b: number) => `${(b / GiB).toFixed(1)} GiB`;

/** Estimated peak bytes (without the reserve) when `onDemand` components are opened only for their step. */
export function sd3PeakBytes(weights: Partial<Record<Sd3Component, number>>, working: Record<Sd3Component, number>, onDemand: ReadonlySet<Sd3Component>): number {
  let resident = 0;
  let step = 0;
  for (const c of SD3_COMPONENTS) {
    const w = weights[c];
    if (w === undefined) continue;
    if (!onDemand.has(c)) resident += w;
    step = Math.max(step, (onDemand.has(c) ? w : 0) + working[c]);
  }
  return resident + step;
}

interface Choice {
  onDemand: Set<Sd3Component>;
  peak: number;
  reload: number;
}

/** The feasible on-demand set that reloads the fewest bytes per request (ties: fewer components), if any. */
function cheapestFit(weights: Partial<Record<Sd3Component, number>>, working: Record<Sd3Component, number>, budget: number): Choice | undefined {
  const present = SD3_COMPONENTS.filter((c) => weights[c] !== undefined);
  let best: Choice | undefined;
  for (let mask = 0; mask < 1 << present.length; mask++) {
    const onDemand = new Set(present.filter((_, i) => mask & (1 << i)));
    const peak = sd3PeakBytes(weights, working, onDemand);
    if (peak > budget) continue;
    const reload = [...onDemand].reduce((a, c) => a + (weights[c] ?? 0), 0);
    if (!best || reload < best.reload || (reload === best.reload && onDemand.size < best.onDemand.size)) best = { onDemand, peak, reload };
  }
  return best;
}

function modesOf(onDemand: ReadonlySet<Sd3Component>): Record<Sd3Component, Residency> {
  return Object.fromEntries(SD3_COMPONENTS.map((c) => [c, onDemand.has(c) ? "on-demand" : "resident"])) as Record<Sd3Component, Residency>;
}

const LABEL: Record<Sd3Component, string> = { clip: "the CLIP encoders", t5: "T5", transformer: "the transformer", vae: "the VAE" };

function listOf(items: string[]): string {
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/**
 * Decides the plan. Throws E_NOT_SUPPORTED when even everything loaded per request and no T5 does not fit; when
 * only T5 does not fit, the plan marks it unavailable with the error (and the options that would fit) for
 * requests that need it.
 */
export function planSd3Memory(input: Sd3MemoryInput): Sd3MemoryPlan {
  const { weights, working } = input;
  for (const [k, v] of Object.entries({ totalBytes: input.totalBytes, freeBytes: input.freeBytes })) {
    if (!(Number.isFinite(v) && v >= 0)) throw new EaselError("E_INPUT_INVALID", `memory ${k} must be a number of bytes >= 0, got ${v}`, { param: `memory.${k}` });
  }
  if (input.t5Quantization !== "none" && input.t5Quantization !== "int8") {
    throw new EaselError("E_INPUT_INVALID", `t5Quantization must be "none" or "int8", got ${JSON.stringify(input.t5Quantization)}`, { param: "t5Quantization" });
  }
  const budget = Math.min(input.freeBytes, input.totalBytes) - (input.reserveBytes ?? DEFAULT_RESERVE_BYTES);
  const int8 = input.t5Quantization === "int8";
  const t5Bytes = weights.t5 === undefined ? undefined : int8 ? (input.t5Int8Weights ?? weights.t5) : weights.t5;
  const sized = { ...weights, t5: t5Bytes };
  const machine = `${gib(Math.max(0, budget))} usable of ${gib(input.freeBytes)} free, ${gib(input.totalBytes)} total`;

  const withT5 = t5Bytes === undefined ? undefined : cheapestFit(sized, working, budget);
  const noT5Weights = { ...weights, t5: undefined };
  const chosen = withT5 ?? cheapestFit(noT5Weights, working, budget);
  if (!chosen) {
    const minimal = sd3PeakBytes(noT5Weights, working, new Set(SD3_COMPONENTS));
    throw new EaselError(
      "E_NOT_SUPPORTED",
      `SD3 does not fit in this machine's memory: even without T5 and with every component loaded per request, the largest step needs about ` +
        `${gib(minimal + (input.reserveBytes ?? DEFAULT_RESERVE_BYTES))} (transformer ${gib(weights.transformer)} fp32 weights + ` +
        `${gib(working.transformer)} working memory at the default size, and a process reserve); ${machine}. --t5-int8 and --no-t5 do not help here`,
      { details: { neededBytes: minimal, budgetBytes: budget, totalBytes: input.totalBytes, freeBytes: input.freeBytes } },
    );
  }

  const t5: Sd3MemoryPlan["t5"] = t5Bytes === undefined ? "absent" : withT5 ? (int8 ? "int8" : "fp32") : "unavailable";
  const plan: Sd3MemoryPlan = {
    modes: modesOf(chosen.onDemand),
    t5,
    peakBytes: chosen.peak,
    budgetBytes: budget,
    reloadBytes: chosen.reload,
  };
  const weightOf = (c: Sd3Component) => `${gib(sized[c] ?? 0)}${c === "t5" && int8 ? " int8" : " fp32"}`;

  if (t5 === "unavailable" && weights.t5 !== undefined) {
    plan.modes.t5 = "on-demand"; // never opened: a request that needs T5 gets t5Error
    // The smallest plan with T5: every component opened only for its step.
    const t5Need = sd3PeakBytes(sized, working, new Set(SD3_COMPONENTS));
    const fixes: string[] = [];
    if (!int8 && cheapestFit({ ...weights, t5: input.t5Int8Weights }, working, budget)) {
      fixes.push('--t5-int8 (config engine.t5Quantization: "int8"; weight-only int8, outputs differ slightly from fp32)');
    }
    fixes.push("--no-t5 (no_t5: T5's part of the conditioning is zeros)");
    plan.t5Error = new EaselError(
      "E_NOT_SUPPORTED",
      `T5 does not fit in memory: with ${gib(t5Bytes ?? 0)}${int8 ? " int8" : " fp32"} T5 weights the smallest plan (every component ` +
        `loaded per request and released) needs about ${gib(t5Need)}; ${machine}. Use ${fixes.join(" or ")}`,
      { param: "no_t5", details: { neededBytes: t5Need, budgetBytes: budget, totalBytes: input.totalBytes, freeBytes: input.freeBytes } },
    );
    plan.warning = {
      code: "W_MEMORY_PLAN",
      message: `T5 (${weightOf("t5")}) does not fit in memory even loaded per request (${machine}): requests must run without T5 (no_t5)`,
    };
    return plan;
  }
  if (chosen.onDemand.size > 0) {
    const parts = [...chosen.onDemand].map((c) => `${LABEL[c]} (${weightOf(c)})`);
    const verb = chosen.onDemand.size === 1 ? "is" : "are";
    plan.warning = {
      code: "W_MEMORY_PLAN",
      message:
        `${listOf(parts)} ${verb} loaded per request and released, since everything resident needs about ` +
        `${gib(sd3PeakBytes(sized, working, new Set()))}; estimated peak ${gib(chosen.peak)} (${machine})`,
    };
  }
  return plan;
}

function elements(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function num(cfg: Record<string, unknown> | undefined, key: string, fallback: number): number {
  const v = cfg?.[key];
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

/** Working memory (bytes) of the transformer at `width` x `height` with `batch` (2 = CFG) and `textTokens` context. */
export function transformerWorkingBytes(cfg: { numHeads: number; headDim: number; patchSize: number }, o: { width: number; height: number; batch: number; textTokens: number }): number {
  const S = (o.width / 8 / cfg.patchSize) * (o.height / 8 / cfg.patchSize) + o.textTokens;
  // The joint attention is fused (com.microsoft MultiHeadAttention): no [B, H, S, S] score matrix is held (it was
  // 7.0 GiB of the 9.0 GiB measured at 1024² batch 2 before).
  const hidden = 16 * o.batch * S * cfg.numHeads * cfg.headDim * 4; // q/k/v, MLP (4x) and residual streams
  // Measured on SD3 medium's config with 2 of its 24 layers (activations are freed layer by layer, so the depth does
  // not add to them), random weights, 1024² batch 2, 333 text tokens: peak 0.86 GiB above the open session, where
  // `hidden` gives 0.81 GiB; with a margin.
  return 1.15 * hidden;
}

/** Working memory (bytes) of one T5 encode at `tokens` (batch 1), plus one layer's dequantised wi_0/wi_1 with int8. */
export function t5WorkingBytes(cfg: { dModel: number; dFf: number; numHeads: number }, tokens: number, int8: boolean): number {
  const scores = 2 * cfg.numHeads * tokens * tokens * 4;
  const hidden = 8 * tokens * Math.max(cfg.dFf, cfg.dModel) * 4;
  return scores + hidden + (int8 ? 2 * cfg.dFf * cfg.dModel * 4 : 0);
}

/**
 * Working memory (bytes) of one VAE decode at `width` x `height`: the full-resolution feature maps, scaled from the
 * measured figure of the 128-channel decoder (../pipeline/limits.ts). The mid-block attention is fused (no
 * [tokens, tokens] score matrix: 2 GiB at 1024² before).
 */
export function vaeWorkingBytes(blockOutChannels: number[], o: { width: number; height: number }): number {
  return VAE_DECODE_BYTES_PER_PIXEL * ((blockOutChannels[0] ?? 128) / 128) * o.width * o.height;
}

/** Working memory (bytes) of one CLIP encode (77 tokens): small, counted for completeness. */
export function clipWorkingBytes(hiddenSize: number): number {
  return 40 * 77 * hiddenSize * 4;
}

/**
 * The plan's inputs from a loaded checkpoint (tensor shapes from the safetensors headers, configs) and the
 * machine's memory, at the model's default size (`size`) and the longest T5 prompt.
 */
export function sd3MemoryInput(
  ckpt: Checkpoint,
  machine: { totalBytes: number; freeBytes: number; reserveBytes?: number },
  o: { t5Quantization: T5Quantization; size: { width: number; height: number }; maxT5Tokens: number },
): Sd3MemoryInput {
  const entries = (name: string) => [...((ckpt.components[name]?.weights ?? new Map()) as Map<string, { shape: number[] }>).entries()];
  const fp32 = (name: string) => entries(name).reduce((a, [, e]) => a + elements(e.shape) * 4, 0);
  const hasT5 = Boolean(ckpt.components.text_encoder_3 && ckpt.tokenizers.tokenizer_3);
  let t5Int8 = 0;
  for (const [key, e] of entries("text_encoder_3")) {
    // Quantised linears: 1 byte per weight, a float scale and an int8 zero point per output row.
    t5Int8 += T5_LINEAR_RE.test(key) && e.shape.length === 2 ? elements(e.shape) + e.shape[0] * 5 : elements(e.shape) * 4;
  }
  const t = ckpt.components.transformer?.config;
  const t5c = ckpt.components.text_encoder_3?.config;
  const t5Shape = { dModel: num(t5c, "d_model", 4096), dFf: num(t5c, "d_ff", 10240), numHeads: num(t5c, "num_heads", 64) };
  const vaeBlocks = ckpt.components.vae?.config.block_out_channels;
  const clipHidden = Math.max(num(ckpt.components.text_encoder?.config, "hidden_size", 768), num(ckpt.components.text_encoder_2?.config, "hidden_size", 1280));
  return {
    weights: {
      clip: fp32("text_encoder") + fp32("text_encoder_2"),
      t5: hasT5 ? fp32("text_encoder_3") : undefined,
      transformer: fp32("transformer"),
      vae: fp32("vae"),
    },
    t5Int8Weights: hasT5 ? t5Int8 : undefined,
    working: {
      clip: clipWorkingBytes(clipHidden),
      t5: hasT5 ? t5WorkingBytes(t5Shape, o.maxT5Tokens, o.t5Quantization === "int8") : 0,
      transformer: transformerWorkingBytes(
        { numHeads: num(t, "num_attention_heads", 18), headDim: num(t, "attention_head_dim", 64), patchSize: num(t, "patch_size", 2) },
        { ...o.size, batch: 2, textTokens: 77 + o.maxT5Tokens },
      ),
      vae: vaeWorkingBytes(Array.isArray(vaeBlocks) ? (vaeBlocks as number[]) : [128], o.size),
    },
    totalBytes: machine.totalBytes,
    freeBytes: machine.freeBytes,
    reserveBytes: machine.reserveBytes,
    t5Quantization: o.t5Quantization,
  };
}

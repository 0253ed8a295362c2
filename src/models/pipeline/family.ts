/**
 * The contract between the engine and a model family (models/<family>/index.ts). A family turns a loaded
 * diffusers checkpoint into a runnable pipeline; the engine owns loading, caching, threads and cancellation.
 */
import type { Warning } from "../../core/types.ts";

/** What a family needs of a diffusers checkpoint directory (engine/checkpoint.ts produces it). */
export interface CheckpointComponent {
  dir: string;
  config: Record<string, unknown>;
  /** Checkpoint key -> tensor location (graph/safetensors.ts TensorEntry). */
  weights: Map<string, unknown>;
}

export interface CheckpointLike {
  dir: string;
  family: string;
  pipelineClass: string;
  components: Record<string, CheckpointComponent | null>;
  schedulerConfig: Record<string, unknown>;
  /** Tokenizer folders by component name (`tokenizer`, `tokenizer_2`, `tokenizer_3`). */
  tokenizers: Record<string, { dir: string; className: string }>;
}

export interface RuntimeOptions {
  executionProvider: "cpu" | "cuda";
  intraOpThreads: number;
  cacheDir: string;
  /**
   * SD3: weights of T5's linear layers. "int8" is opt-in (weight-only int8, outputs differ slightly from fp32 and
   * every result says so in a W_QUANTIZED warning). Default "none".
   */
  t5Quantization?: "none" | "int8";
  /**
   * The machine's memory as the memory plan sees it (default os.totalmem() / os.freemem() at load time) and the
   * bytes kept free beyond the plan's estimate: tests and debugging.
   */
  memory?: { totalBytes: number; freeBytes: number; reserveBytes?: number };
}

export interface ModelDefaults {
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  /** Canonical scheduler id, or undefined for the checkpoint's own scheduler. */
  scheduler?: string;
  /** Pixel sizes must be multiples of this. */
  sizeMultiple: number;
}

export interface PipelineParams {
  prompt: string;
  negativePrompt?: string;
  prompt2?: string;
  negativePrompt2?: string;
  prompt3?: string;
  negativePrompt3?: string;
  n: number;
  width?: number;
  height?: number;
  steps?: number;
  guidanceScale?: number;
  guidanceRescale?: number;
  scheduler?: string;
  /** Seed of the torch-compatible CPU generator; always resolved by the caller. */
  seed: number;
  /** Unit-normal initial latents [n, C, h, w] replacing the generator's draw (parity checks). */
  initLatents?: Float32Array;
  /** Per-step scheduler noise replacing the generator's draws, each draw [n, C, h, w]. */
  stepNoise?: Float32Array;
  /** img2img: RGB in [-1, 1], CHW, at the output size. */
  initImage?: { data: Float32Array; width: number; height: number };
  strength?: number;
  /** SD3: T5 prompt length in tokens (default 256; the graph accepts up to 512). */
  maxSequenceLength?: number;
  /** SD3: run without the T5 encoder (its part of the context is zeros), saving its memory and time. */
  noT5?: boolean;
  /** CLIP layers to skip from the end (1 = penultimate), SD1.x only. */
  clipSkip?: number;
  /** Number of evenly spread preview frames to emit (0 = none). */
  previews?: number;
}

export interface PipelineImage {
  width: number;
  height: number;
  /** 8-bit RGB, HWC. */
  rgb: Uint8Array;
}

export interface PipelineHooks {
  /** Checked between steps; when true the run stops with an AbortError. */
  isCancelled?: () => boolean;
  onStep?: (step: number, totalSteps: number) => void;
  onPreview?: (index: number, step: number, images: PipelineImage[]) => void;
}

export interface PipelineOutput {
  seed: number;
  /** Final latents before any VAE un-scaling, [n, C, h, w]. */
  latents: Float32Array;
  latentShape: number[];
  images: PipelineImage[];
  warnings: Warning[];
}

export interface LoadedPipeline {
  family: string;
  defaults: ModelDefaults;
  run(params: PipelineParams, hooks?: PipelineHooks): Promise<PipelineOutput>;
  release(): Promise<void>;
}

export interface ModelFamily {
  id: string;
  /** Public names a checkpoint of this family answers to besides its folder name (e.g. "sdxl"). */
  aliases(ckpt: CheckpointLike): string[];
  defaults(ckpt: CheckpointLike): ModelDefaults;
  load(ckpt: CheckpointLike, rt: RuntimeOptions): Promise<LoadedPipeline>;
}

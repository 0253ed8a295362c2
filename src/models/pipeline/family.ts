/**
 * The contract between the engine and a model family (models/<family>/index.ts). A family owns everything that
 * makes it different: which checkpoints it runs (detect, required components), how its network's output is read
 * (kind), what requests it accepts (limits), its defaults and aliases, and its pipeline. The engine owns loading,
 * caching, threads and cancellation; models/index.ts lists the families, one line each.
 */
import type { Checkpoint } from "../../checkpoint/checkpoint.ts";
import type { ModelDefaultValues, ModelKind, ModelLimits } from "../../core/limits.ts";
import type { GenerationRequest, Warning } from "../../core/types.ts";
import type { LoraApplication } from "../components/component.ts";
import type { LoraChoice } from "../components/lora.ts";

export type { Checkpoint, CheckpointComponent } from "../../checkpoint/checkpoint.ts";

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
   * The denoiser's compute precision: "fp32" (default, exact) or the opt-in "int8" path (../components/component.ts);
   * every int8 result carries a W_QUANTIZED warning.
   */
  precision?: "fp32" | "int8";
  /**
   * The machine's memory as the memory plan sees it (default os.totalmem() / os.freemem() at load time) and the
   * bytes kept free beyond the plan's estimate: tests and debugging.
   */
  memory?: { totalBytes: number; freeBytes: number; reserveBytes?: number };
  /**
   * engine.memoryLimitGiB in bytes: the most memory the plans may count on, below the machine's (and its container's)
   * when set. Plans that do not fit keep less loaded (SD3's components opened per request, guidance as two calls)
   * or refuse the request with the figure it needs.
   */
  memoryLimitBytes?: number;
  /** LoRAs merged into the weights of the components they touch (set by the engine per LoRA set). */
  loras?: LoraApplication;
}

export type ModelDefaults = ModelDefaultValues;

/**
 * What one pipeline run is asked for: the request's prompt and sampling fields as they are (GenerationRequest,
 * mapped once in ./request.ts), the output size optional (the model's default), the seed resolved, the init image
 * decoded, and the parity inputs only the CLI sets.
 */
export interface PipelineParams
  extends Pick<
      GenerationRequest,
      | "prompt"
      | "negativePrompt"
      | "prompt2"
      | "negativePrompt2"
      | "prompt3"
      | "negativePrompt3"
      | "n"
      | "steps"
      | "guidanceScale"
      | "guidanceRescale"
      | "scheduler"
      | "strength"
      | "maxSequenceLength"
      | "useT5"
      | "clipSkip"
    >,
    Partial<Pick<GenerationRequest, "width" | "height">> {
  /** Seed of the torch-compatible CPU generator; always resolved by the caller. */
  seed: number;
  /** Unit-normal initial latents [n, C, h, w] replacing the generator's draw (parity checks). */
  initLatents?: Float32Array;
  /** Per-step scheduler noise replacing the generator's draws, each draw [n, C, h, w]. */
  stepNoise?: Float32Array;
  /** img2img: RGB in [-1, 1], CHW, at the output size. */
  initImage?: { data: Float32Array; width: number; height: number };
  /**
   * Inpainting, with initImage: the mask at the output size, [H, W] of 0 (keep) and 1 (repaint), binarised as
   * diffusers' mask processor does. Without it, an inpainting UNet (9 input channels) repaints the whole image.
   */
  mask?: { data: Float32Array; width: number; height: number };
  /** Number of evenly spread preview frames to emit (0 = none). */
  previews?: number;
  /**
   * LoRA files (resolved paths) and scales. Applied by the engine when it loads the pipeline: each distinct set is a
   * pipeline of its own (models/components/lora.ts), which families never see in `run`.
   */
  loras?: LoraChoice[];
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
  limits: ModelLimits;
  run(params: PipelineParams, hooks?: PipelineHooks): Promise<PipelineOutput>;
  release(): Promise<void>;
}

/** What the engine tells the rest of Easel about a checkpoint: the family's answers for it. */
export interface ModelDescription {
  family: string;
  kind: ModelKind;
  limits: ModelLimits;
  defaults: ModelDefaults;
  aliases: string[];
}

export interface ModelFamily {
  id: string;
  /** Whether this family runs the checkpoint, from model_index.json and the component configs. */
  detect(ckpt: Checkpoint): boolean;
  /** Components (model_index names) the checkpoint must have for this family. */
  required: readonly string[];
  /** Checks beyond presence (e.g. a pair of components that come together); throws E_CHECKPOINT_INVALID. */
  validate?(ckpt: Checkpoint): void;
  kind(ckpt: Checkpoint): ModelKind;
  /** What requests the model accepts; `rt` gives the machine's memory to families with a memory model. */
  limits(ckpt: Checkpoint, rt?: Pick<RuntimeOptions, "memory">): ModelLimits;
  defaults(ckpt: Checkpoint): ModelDefaults;
  /** Public names a checkpoint of this family answers to besides its folder name (e.g. "sdxl"). */
  aliases(ckpt: Checkpoint): string[];
  load(ckpt: Checkpoint, rt: RuntimeOptions): Promise<LoadedPipeline>;
}

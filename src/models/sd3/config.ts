/**
 * Stable Diffusion 3 / 3.5 (StableDiffusion3Pipeline): the SD3Transformer2DModel config, which checkpoint is
 * which (SD3 medium, SD3.5 large / large-turbo / medium), their model-card defaults and preview factors.
 */
import { EaselError } from "../../core/errors.ts";
import type { ModelLimits } from "../../core/limits.ts";
import type { Checkpoint, ModelDefaults } from "../pipeline/family.ts";
import type { LatentRgbFactors } from "../pipeline/latent-preview.ts";
import { MAX_IMAGES, MAX_STEPS } from "../pipeline/limits.ts";

export interface Sd3TransformerConfig {
  sampleSize: number;
  patchSize: number;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  jointAttentionDim: number;
  captionProjectionDim: number;
  pooledProjectionDim: number;
  /** Side of the stored square grid of positional embeddings (cropped at the centre for each latent size). */
  posEmbedMaxSize: number;
  /** SD3.5: RMS norm on q/k (and the context's q/k) per head. */
  qkNorm: "rms_norm" | null;
  /** SD3.5 medium: blocks with a second, image-only self-attention (`attn2`). */
  dualAttentionLayers: number[];
}

function int(json: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`, {
      details: { file, key },
    });
  }
  return v;
}

/** Reads a diffusers SD3Transformer2DModel `config.json`; `file` names it in errors. */
export function sd3TransformerConfigFromJson(json: Record<string, unknown>, file = "config.json"): Sd3TransformerConfig {
  const numLayers = int(json, "num_layers", file, 18);
  const qk = json.qk_norm ?? null;
  if (qk !== null && qk !== "rms_norm") {
    throw new EaselError("E_NOT_SUPPORTED", `${file}: qk_norm "${String(qk)}" is not supported (null or "rms_norm")`, { details: { file, key: "qk_norm" } });
  }
  const dual = json.dual_attention_layers ?? [];
  if (!Array.isArray(dual) || !dual.every((i) => Number.isInteger(i) && i >= 0 && i < numLayers)) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: "dual_attention_layers" must list block indices in [0, ${numLayers - 1}]`, {
      details: { file, key: "dual_attention_layers" },
    });
  }
  if (json.pos_embed_max_size === null || json.pos_embed_max_size === undefined) {
    throw new EaselError("E_NOT_SUPPORTED", `${file}: a transformer without pos_embed_max_size (sinusoidal positions) is not supported`, {
      details: { file, key: "pos_embed_max_size" },
    });
  }
  const cfg: Sd3TransformerConfig = {
    sampleSize: int(json, "sample_size", file, 128),
    patchSize: int(json, "patch_size", file, 2),
    inChannels: int(json, "in_channels", file, 16),
    outChannels: int(json, "out_channels", file, 16),
    numLayers,
    numHeads: int(json, "num_attention_heads", file, 18),
    headDim: int(json, "attention_head_dim", file, 64),
    jointAttentionDim: int(json, "joint_attention_dim", file, 4096),
    captionProjectionDim: int(json, "caption_projection_dim", file, 1152),
    pooledProjectionDim: int(json, "pooled_projection_dim", file, 2048),
    posEmbedMaxSize: int(json, "pos_embed_max_size", file),
    qkNorm: qk as "rms_norm" | null,
    dualAttentionLayers: dual as number[],
  };
  if (cfg.captionProjectionDim !== cfg.numHeads * cfg.headDim) {
    throw new EaselError(
      "E_CHECKPOINT_INVALID",
      `${file}: caption_projection_dim ${cfg.captionProjectionDim} must equal num_attention_heads * attention_head_dim (${cfg.numHeads * cfg.headDim})`,
      { details: { file, key: "caption_projection_dim" } },
    );
  }
  return cfg;
}

export type Sd3Variant = "sd3-medium" | "sd3.5-large" | "sd3.5-large-turbo" | "sd3.5-medium";

/**
 * Which release a checkpoint is, from its transformer config: SD3.5 adds qk RMS norm, SD3.5 medium dual attention;
 * large-turbo is told from large by its name (same architecture), as the published folders are named.
 */
export function sd3Variant(ckpt: Checkpoint): Sd3Variant {
  const t = ckpt.components.transformer?.config ?? {};
  const dual = Array.isArray(t.dual_attention_layers) && t.dual_attention_layers.length > 0;
  if (dual) return "sd3.5-medium";
  if (t.qk_norm === "rms_norm") return /turbo/i.test(ckpt.dir) ? "sd3.5-large-turbo" : "sd3.5-large";
  return "sd3-medium";
}

const STEPS_GUIDANCE: Record<Sd3Variant, [number, number]> = {
  "sd3-medium": [28, 7.0],
  "sd3.5-large": [28, 3.5],
  "sd3.5-large-turbo": [4, 0],
  "sd3.5-medium": [40, 4.5],
};

export function sd3Defaults(ckpt: Checkpoint): ModelDefaults {
  const t = ckpt.components.transformer?.config ?? {};
  const sampleSize = typeof t.sample_size === "number" ? t.sample_size : 128;
  const [steps, guidanceScale] = STEPS_GUIDANCE[sd3Variant(ckpt)];
  // VAE factor 8 times patch 2.
  return { width: sampleSize * 8, height: sampleSize * 8, steps, guidanceScale };
}

/** The longest T5 prompt the encoder graph is built for (T5's own model_max_length). */
export const MAX_T5_SEQUENCE_LENGTH = 512;

/** StableDiffusion3Img2ImgPipeline's default `strength`. */
export const SD3_IMG2IMG_STRENGTH = 0.6;

export function hasT5(ckpt: Checkpoint): boolean {
  return Boolean(ckpt.components.text_encoder_3 && ckpt.tokenizers.tokenizer_3);
}

/**
 * Sizes: multiples of 16 (VAE factor 8 times patch 2), up to the grid of stored positions
 * (pos_embed_max_size patches per side). No clip_skip or guidance rescale in StableDiffusion3Pipeline.
 */
export function sd3Limits(ckpt: Checkpoint): ModelLimits {
  const t = ckpt.components.transformer?.config ?? {};
  const patch = typeof t.patch_size === "number" ? t.patch_size : 2;
  const maxPatches = typeof t.pos_embed_max_size === "number" ? t.pos_embed_max_size : 96;
  const t5 = hasT5(ckpt);
  return {
    sizeMultiple: 8 * patch,
    minSize: 8 * patch,
    maxSize: maxPatches * patch * 8,
    maxImages: MAX_IMAGES,
    maxSteps: MAX_STEPS,
    guidance: { min: 0, max: 50 },
    guidanceRescale: false,
    negativePrompt: true,
    prompt2: true,
    prompt3: t5,
    maxClipSkip: 0,
    maxSequenceLength: t5 ? MAX_T5_SEQUENCE_LENGTH : 0,
    img2img: { rule: "fractional", defaultStrength: SD3_IMG2IMG_STRENGTH },
  };
}

/** ComfyUI's SD3 Latent2RGB factors (16 channels, with bias; MODELS.md §6.2). */
export const SD3_PREVIEW: LatentRgbFactors = {
  weights: [
    [-0.0922, -0.0175, 0.0749],
    [0.0311, 0.0633, 0.0954],
    [0.1994, 0.0927, 0.0458],
    [0.0856, 0.0339, 0.0902],
    [0.0587, 0.0272, -0.0496],
    [-0.0006, 0.1104, 0.0309],
    [0.0978, 0.0306, 0.0427],
    [-0.0042, 0.1038, 0.1358],
    [-0.0194, 0.0020, 0.0669],
    [-0.0488, 0.0130, -0.0268],
    [0.0922, 0.0988, 0.0951],
    [-0.0278, 0.0524, -0.0542],
    [0.0332, 0.0456, 0.0895],
    [-0.0069, -0.0030, -0.0810],
    [-0.0596, -0.0465, -0.0293],
    [-0.1448, -0.1463, -0.1189],
  ],
  bias: [0.2394, 0.2135, 0.1925],
};

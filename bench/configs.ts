/**
 * The published denoiser `config.json` of the real models the benchmark builds with random weights
 * (runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0 `unet/`,
 * stabilityai/stable-diffusion-3-medium-diffusers `transformer/`; see MODELS.md §1.2, §1.4, §1.7), and what each
 * call is fed: text context length and width, pooled-embedding width.
 */
import { clipTextConfigJson, t5EncoderConfigJson } from "../src/models/testing/tiny-checkpoint.ts";

interface BenchModelBase {
  label: string;
  /** encoder_hidden_states [B, contextLength, contextDim]. */
  contextLength: number;
  contextDim: number;
  /** SDXL text_embeds / SD3 pooled_projections [B, pooledDim]; undefined for SD1.5. */
  pooledDim?: number;
}

export interface UnetBenchModel extends BenchModelBase {
  kind: "unet";
  id: "sd15" | "sdxl";
  /** diffusers UNet2DConditionModel config.json. */
  config: Record<string, unknown>;
}

export interface MmditBenchModel extends BenchModelBase {
  kind: "mmdit";
  id: "sd3";
  /** diffusers SD3Transformer2DModel config.json. */
  config: Record<string, unknown>;
}

export type BenchModel = UnetBenchModel | MmditBenchModel;

export const SD15_UNET: UnetBenchModel = {
  kind: "unet",
  id: "sd15",
  label: "SD1.5 UNet",
  contextLength: 77,
  contextDim: 768,
  config: {
    _class_name: "UNet2DConditionModel",
    act_fn: "silu",
    attention_head_dim: 8,
    block_out_channels: [320, 640, 1280, 1280],
    center_input_sample: false,
    cross_attention_dim: 768,
    down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 4,
    layers_per_block: 2,
    mid_block_scale_factor: 1,
    norm_eps: 1e-5,
    norm_num_groups: 32,
    out_channels: 4,
    sample_size: 64,
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  },
};

export const SDXL_UNET: UnetBenchModel = {
  kind: "unet",
  id: "sdxl",
  label: "SDXL UNet",
  contextLength: 77,
  contextDim: 2048,
  pooledDim: 1280,
  config: {
    _class_name: "UNet2DConditionModel",
    act_fn: "silu",
    addition_embed_type: "text_time",
    addition_embed_type_num_heads: 64,
    addition_time_embed_dim: 256,
    attention_head_dim: [5, 10, 20],
    block_out_channels: [320, 640, 1280],
    center_input_sample: false,
    class_embed_type: null,
    conv_in_kernel: 3,
    conv_out_kernel: 3,
    cross_attention_dim: 2048,
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    downsample_padding: 1,
    dual_cross_attention: false,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 4,
    layers_per_block: 2,
    mid_block_scale_factor: 1,
    mid_block_type: "UNetMidBlock2DCrossAttn",
    norm_eps: 1e-5,
    norm_num_groups: 32,
    num_attention_heads: null,
    out_channels: 4,
    projection_class_embeddings_input_dim: 2816,
    resnet_out_scale_factor: 1,
    resnet_time_scale_shift: "default",
    sample_size: 128,
    transformer_layers_per_block: [1, 2, 10],
    up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    upcast_attention: null,
    use_linear_projection: true,
  },
};

/** SD3 medium's transformer; its context is 77 CLIP tokens (CLIP-L and bigG, zero-padded to 4096) + 256 T5 tokens. */
export const SD3_MEDIUM_TRANSFORMER: MmditBenchModel = {
  kind: "mmdit",
  id: "sd3",
  label: "SD3 medium MMDiT",
  contextLength: 333,
  contextDim: 4096,
  pooledDim: 2048,
  config: {
    _class_name: "SD3Transformer2DModel",
    attention_head_dim: 64,
    caption_projection_dim: 1536,
    dual_attention_layers: [],
    in_channels: 16,
    joint_attention_dim: 4096,
    num_attention_heads: 24,
    num_layers: 24,
    out_channels: 16,
    patch_size: 2,
    pooled_projection_dim: 2048,
    pos_embed_max_size: 192,
    qk_norm: null,
    sample_size: 128,
  },
};

export const BENCH_MODELS = { sd15: SD15_UNET, sdxl: SDXL_UNET, sd3: SD3_MEDIUM_TRANSFORMER } as const;
export type BenchModelId = keyof typeof BENCH_MODELS;

// ---------------------------------------------------------------------------------------------------------------
// End-to-end pipelines (bench/e2e.ts): the published component configs of stabilityai/sd-turbo,
// stabilityai/sdxl-turbo, stabilityai/stable-diffusion-xl-base-1.0 and stabilityai/stable-diffusion-3-medium-diffusers
// (text encoders, denoiser, VAE, scheduler).

function sdVaeConfig(sampleSize: number, scalingFactor: number): Record<string, unknown> {
  return {
    _class_name: "AutoencoderKL",
    act_fn: "silu",
    block_out_channels: [128, 256, 512, 512],
    down_block_types: new Array(4).fill("DownEncoderBlock2D"),
    force_upcast: true,
    in_channels: 3,
    latent_channels: 4,
    layers_per_block: 2,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: sampleSize,
    scaling_factor: scalingFactor,
    up_block_types: new Array(4).fill("UpDecoderBlock2D"),
  };
}

function eulerScheduler(spacing: "trailing" | "leading"): Record<string, unknown> {
  return {
    _class_name: "EulerDiscreteScheduler",
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    beta_start: 0.00085,
    clip_sample: false,
    interpolation_type: "linear",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    set_alpha_to_one: false,
    steps_offset: 1,
    timestep_spacing: spacing,
    trained_betas: null,
    use_karras_sigmas: false,
  };
}

interface E2eBenchModelBase {
  label: string;
  /** The CLIP text encoders: folder name and transformers CLIPTextConfig `config.json`. */
  textEncoders: [name: string, config: Record<string, unknown>][];
  vae: Record<string, unknown>;
  scheduler: Record<string, unknown>;
  /** The request the row times. */
  size: number;
  steps: number;
  guidance: number;
}

export interface E2eUnetModel extends E2eBenchModelBase {
  id: "sd-turbo" | "sdxl-turbo" | "sdxl";
  /** The tiny checkpoint family whose layout (model_index, tokenizers) the benchmark starts from. */
  family: "sd15" | "sdxl";
  unet: Record<string, unknown>;
}

export interface E2eSd3Model extends E2eBenchModelBase {
  id: "sd3";
  family: "sd3";
  /** diffusers SD3Transformer2DModel `config.json` (`transformer/`). */
  transformer: Record<string, unknown>;
  /** transformers T5EncoderModel `config.json` (`text_encoder_3/`). */
  t5: Record<string, unknown>;
  /** engine.t5Quantization of the engine the row runs. */
  t5Quantization: "none" | "int8";
}

export type E2eBenchModel = E2eUnetModel | E2eSd3Model;

/** stabilityai/sd-turbo: the SD 2.1 UNet (OpenCLIP ViT-H text encoder, 1024-wide context, linear projections). */
export const SD_TURBO: E2eUnetModel = {
  id: "sd-turbo",
  label: "SD-Turbo",
  family: "sd15",
  textEncoders: [["text_encoder", clipTextConfigJson({ hidden: 1024, heads: 16, layers: 23, act: "gelu", projection: 512 })]],
  unet: {
    ...SD15_UNET.config,
    attention_head_dim: [5, 10, 20, 20],
    cross_attention_dim: 1024,
    dual_cross_attention: false,
    use_linear_projection: true,
  },
  vae: sdVaeConfig(768, 0.18215),
  scheduler: eulerScheduler("trailing"),
  size: 512,
  steps: 1,
  guidance: 0,
};

const SDXL_TEXT_ENCODERS: E2eBenchModel["textEncoders"] = [
  ["text_encoder", clipTextConfigJson({ hidden: 768, heads: 12, layers: 12, act: "quick_gelu", projection: 768 })],
  ["text_encoder_2", clipTextConfigJson({ hidden: 1280, heads: 20, layers: 32, act: "gelu", projection: 1280, withProjection: true })],
];

/** stabilityai/sdxl-turbo: SDXL's UNet and text encoders, trailing timesteps, no guidance. */
export const SDXL_TURBO: E2eUnetModel = {
  id: "sdxl-turbo",
  label: "SDXL-Turbo",
  family: "sdxl",
  textEncoders: SDXL_TEXT_ENCODERS,
  unet: SDXL_UNET.config,
  vae: sdVaeConfig(512, 0.13025),
  scheduler: eulerScheduler("trailing"),
  size: 512,
  steps: 4,
  guidance: 0,
};

/** stabilityai/stable-diffusion-xl-base-1.0 at its default request: 1024², 30 steps, guidance 5. */
export const SDXL_BASE: E2eUnetModel = {
  ...SDXL_TURBO,
  id: "sdxl",
  label: "SDXL",
  vae: sdVaeConfig(1024, 0.13025),
  scheduler: eulerScheduler("leading"),
  size: 1024,
  steps: 30,
  guidance: 5,
};

/**
 * google/t5-v1_1-xxl's encoder, SD3's text_encoder_3 (T5 v1.1: gated-gelu feed-forward, untied, no biases; MODELS.md
 * §1.7): 4.76 B parameters.
 */
export const T5_XXL_ENCODER: Record<string, unknown> = t5EncoderConfigJson({
  dModel: 4096,
  dFf: 10240,
  dKv: 64,
  heads: 64,
  layers: 24,
  vocabSize: 32128,
  dropout: 0.1,
  dtype: "float16",
});

/**
 * stabilityai/stable-diffusion-3-medium-diffusers at its default request (1024², 28 steps, guidance 7; MODELS.md §1.7):
 * CLIP-L and OpenCLIP bigG with projections, T5-XXL, the MMDiT transformer, the 16-channel VAE and flow matching
 * with shift 3. T5 runs with weight-only int8 linears (engine.t5Quantization "int8"): in fp32 it alone is ~18 GiB.
 */
export const SD3_MEDIUM: E2eSd3Model = {
  id: "sd3",
  label: "SD3 medium (int8 T5)",
  family: "sd3",
  textEncoders: [
    ["text_encoder", clipTextConfigJson({ hidden: 768, heads: 12, layers: 12, act: "quick_gelu", projection: 768, withProjection: true })],
    ["text_encoder_2", clipTextConfigJson({ hidden: 1280, heads: 20, layers: 32, act: "gelu", projection: 1280, withProjection: true })],
  ],
  transformer: SD3_MEDIUM_TRANSFORMER.config,
  t5: T5_XXL_ENCODER,
  t5Quantization: "int8",
  vae: { ...sdVaeConfig(1024, 1.5305), latent_channels: 16, shift_factor: 0.0609, use_post_quant_conv: false, use_quant_conv: false },
  scheduler: { _class_name: "FlowMatchEulerDiscreteScheduler", num_train_timesteps: 1000, shift: 3.0 },
  size: 1024,
  steps: 28,
  guidance: 7,
};

export const E2E_MODELS = { "sd-turbo": SD_TURBO, "sdxl-turbo": SDXL_TURBO, sdxl: SDXL_BASE, sd3: SD3_MEDIUM } as const;

/**
 * The published denoiser `config.json` of the real models the benchmark builds with random weights
 * (runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0 `unet/`,
 * stabilityai/stable-diffusion-3-medium-diffusers `transformer/`; see MODELS.md §1.2, §1.4, §1.7), and what each
 * call is fed: text context length and width, pooled-embedding width.
 */

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

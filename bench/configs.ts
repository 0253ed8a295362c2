/**
 * The published `unet/config.json` of the real models the benchmark builds with random weights
 * (runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0; see MODELS.md §1.2, §1.4), and
 * what each UNet call is fed: text context length and width, pooled-embedding width.
 */

export interface BenchModel {
  id: "sd15" | "sdxl";
  label: string;
  unetConfig: Record<string, unknown>;
  /** encoder_hidden_states [B, contextLength, contextDim]. */
  contextLength: number;
  contextDim: number;
  /** SDXL text_embeds [B, pooledDim] (text_time conditioning); undefined for SD1.5. */
  pooledDim?: number;
}

export const SD15_UNET: BenchModel = {
  id: "sd15",
  label: "SD1.5 UNet",
  contextLength: 77,
  contextDim: 768,
  unetConfig: {
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

export const SDXL_UNET: BenchModel = {
  id: "sdxl",
  label: "SDXL UNet",
  contextLength: 77,
  contextDim: 2048,
  pooledDim: 1280,
  unetConfig: {
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

export const BENCH_MODELS = { sd15: SD15_UNET, sdxl: SDXL_UNET } as const;

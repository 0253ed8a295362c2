/**
 * Easel's bundled copy of the configuration files of the published base pipelines, used to convert a single file
 * when no diffusers folder of its family is at hand (diffusers' `from_single_file` fetches the same files from the
 * Hub; DIFFUSERS_DEFAULT_PIPELINE_PATHS in its loaders/single_file_utils.py names the repositories):
 * - SD1.x: runwayml/stable-diffusion-v1-5 (PNDM scheduler);
 * - SD2.x: stabilityai/stable-diffusion-2-1, the 768-pixel v-prediction model (DDIM scheduler, v_prediction):
 *   diffusers' default for an SD2 file, whose prediction type it only sets to epsilon for a checkpoint saved at
 *   global_step 875000 (the 512-pixel base), which .safetensors files do not record;
 * - SDXL base: stabilityai/stable-diffusion-xl-base-1.0 (Euler scheduler).
 * The values are those of the repositories' model_index.json, `<component>/config.json` and
 * `scheduler/scheduler_config.json` (the SD1.5 and SDXL files as copied in vladmandic/automatic configs/sd15 and
 * configs/sdxl at 76cbf115; the SD2.1 UNet as quoted in kohya-ss sd-scripts). Tokenizers: ./clip-tokenizer-files.ts.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ClipVocabulary, clipVocabulary, type StandardTokenizer, writeClipTokenizer } from "./clip-tokenizer-files.ts";

type Json = Record<string, unknown>;

export interface StandardConfigs {
  /** The Hub repository whose files these are. */
  repo: string;
  label: string;
  modelIndex: Json;
  /** config.json of each model component. */
  components: Record<string, Json>;
  scheduler: Json;
  tokenizers: Record<string, StandardTokenizer>;
}

const DOWN4 = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
const UP4 = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

function vae(version: string, sampleSize: number, extra: Json = {}): Json {
  return {
    _class_name: "AutoencoderKL",
    _diffusers_version: version,
    ...extra,
    act_fn: "silu",
    block_out_channels: [128, 256, 512, 512],
    down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    in_channels: 3,
    latent_channels: 4,
    layers_per_block: 2,
    norm_num_groups: 32,
    out_channels: 3,
    sample_size: sampleSize,
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  };
}

function clipText(o: { nameOrPath?: string; architecture: string; act: string; hidden: number; intermediate: number; heads: number; layers: number; projection: number; dtype: string; transformers: string }): Json {
  return {
    ...(o.nameOrPath ? { _name_or_path: o.nameOrPath } : {}),
    architectures: [o.architecture],
    attention_dropout: 0.0,
    bos_token_id: 0,
    dropout: 0.0,
    eos_token_id: 2,
    hidden_act: o.act,
    hidden_size: o.hidden,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: o.intermediate,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 77,
    model_type: "clip_text_model",
    num_attention_heads: o.heads,
    num_hidden_layers: o.layers,
    pad_token_id: 1,
    projection_dim: o.projection,
    torch_dtype: o.dtype,
    transformers_version: o.transformers,
    vocab_size: 49408,
  };
}

const SCALED_LINEAR = { beta_end: 0.012, beta_schedule: "scaled_linear", beta_start: 0.00085 };

/** runwayml/stable-diffusion-v1-5. */
const SD15: StandardConfigs = {
  repo: "runwayml/stable-diffusion-v1-5",
  label: "SD1.5",
  modelIndex: {
    _class_name: "StableDiffusionPipeline",
    _diffusers_version: "0.6.0",
    feature_extractor: ["transformers", "CLIPImageProcessor"],
    safety_checker: ["stable_diffusion", "StableDiffusionSafetyChecker"],
    scheduler: ["diffusers", "PNDMScheduler"],
    text_encoder: ["transformers", "CLIPTextModel"],
    tokenizer: ["transformers", "CLIPTokenizer"],
    unet: ["diffusers", "UNet2DConditionModel"],
    vae: ["diffusers", "AutoencoderKL"],
  },
  components: {
    unet: {
      _class_name: "UNet2DConditionModel",
      _diffusers_version: "0.6.0",
      act_fn: "silu",
      attention_head_dim: 8,
      block_out_channels: [320, 640, 1280, 1280],
      center_input_sample: false,
      cross_attention_dim: 768,
      down_block_types: DOWN4,
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
      up_block_types: UP4,
    },
    vae: vae("0.6.0", 512),
    text_encoder: clipText({
      nameOrPath: "openai/clip-vit-large-patch14",
      architecture: "CLIPTextModel",
      act: "quick_gelu",
      hidden: 768,
      intermediate: 3072,
      heads: 12,
      layers: 12,
      projection: 768,
      dtype: "float32",
      transformers: "4.22.0.dev0",
    }),
  },
  scheduler: {
    _class_name: "PNDMScheduler",
    _diffusers_version: "0.6.0",
    ...SCALED_LINEAR,
    num_train_timesteps: 1000,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    trained_betas: null,
    clip_sample: false,
  },
  tokenizers: { tokenizer: "clip-l-sd15" },
};

/** stabilityai/stable-diffusion-2-1 (768-v). */
const SD21: StandardConfigs = {
  repo: "stabilityai/stable-diffusion-2-1",
  label: "SD2.1 (768 px, v-prediction)",
  modelIndex: {
    _class_name: "StableDiffusionPipeline",
    _diffusers_version: "0.10.0.dev0",
    feature_extractor: ["transformers", "CLIPImageProcessor"],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ["diffusers", "DDIMScheduler"],
    text_encoder: ["transformers", "CLIPTextModel"],
    tokenizer: ["transformers", "CLIPTokenizer"],
    unet: ["diffusers", "UNet2DConditionModel"],
    vae: ["diffusers", "AutoencoderKL"],
  },
  components: {
    unet: {
      _class_name: "UNet2DConditionModel",
      _diffusers_version: "0.10.0.dev0",
      act_fn: "silu",
      attention_head_dim: [5, 10, 20, 20],
      block_out_channels: [320, 640, 1280, 1280],
      center_input_sample: false,
      cross_attention_dim: 1024,
      down_block_types: DOWN4,
      downsample_padding: 1,
      dual_cross_attention: false,
      flip_sin_to_cos: true,
      freq_shift: 0,
      in_channels: 4,
      layers_per_block: 2,
      mid_block_scale_factor: 1,
      norm_eps: 1e-5,
      norm_num_groups: 32,
      num_class_embeds: null,
      only_cross_attention: false,
      out_channels: 4,
      sample_size: 96,
      up_block_types: UP4,
      upcast_attention: true,
      use_linear_projection: true,
    },
    vae: vae("0.10.0.dev0", 768, { _name_or_path: "hf-models/stable-diffusion-v2-768x768/vae" }),
    text_encoder: clipText({
      nameOrPath: "hf-models/stable-diffusion-v2-768x768/text_encoder",
      architecture: "CLIPTextModel",
      act: "gelu",
      hidden: 1024,
      intermediate: 4096,
      heads: 16,
      layers: 23,
      projection: 512,
      dtype: "float32",
      transformers: "4.25.0.dev0",
    }),
  },
  scheduler: {
    _class_name: "DDIMScheduler",
    _diffusers_version: "0.8.0",
    ...SCALED_LINEAR,
    clip_sample: false,
    num_train_timesteps: 1000,
    prediction_type: "v_prediction",
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    trained_betas: null,
  },
  tokenizers: { tokenizer: "open-clip" },
};

/** stabilityai/stable-diffusion-xl-base-1.0. */
const SDXL: StandardConfigs = {
  repo: "stabilityai/stable-diffusion-xl-base-1.0",
  label: "SDXL base 1.0",
  modelIndex: {
    _class_name: "StableDiffusionXLPipeline",
    _diffusers_version: "0.19.0.dev0",
    force_zeros_for_empty_prompt: true,
    add_watermarker: null,
    scheduler: ["diffusers", "EulerDiscreteScheduler"],
    text_encoder: ["transformers", "CLIPTextModel"],
    text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
    tokenizer: ["transformers", "CLIPTokenizer"],
    tokenizer_2: ["transformers", "CLIPTokenizer"],
    unet: ["diffusers", "UNet2DConditionModel"],
    vae: ["diffusers", "AutoencoderKL"],
  },
  components: {
    unet: {
      _class_name: "UNet2DConditionModel",
      _diffusers_version: "0.19.0.dev0",
      act_fn: "silu",
      addition_embed_type: "text_time",
      addition_embed_type_num_heads: 64,
      addition_time_embed_dim: 256,
      attention_head_dim: [5, 10, 20],
      block_out_channels: [320, 640, 1280],
      center_input_sample: false,
      class_embed_type: null,
      class_embeddings_concat: false,
      conv_in_kernel: 3,
      conv_out_kernel: 3,
      cross_attention_dim: 2048,
      cross_attention_norm: null,
      down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
      downsample_padding: 1,
      dual_cross_attention: false,
      encoder_hid_dim: null,
      encoder_hid_dim_type: null,
      flip_sin_to_cos: true,
      freq_shift: 0,
      in_channels: 4,
      layers_per_block: 2,
      mid_block_only_cross_attention: null,
      mid_block_scale_factor: 1,
      mid_block_type: "UNetMidBlock2DCrossAttn",
      norm_eps: 1e-5,
      norm_num_groups: 32,
      num_attention_heads: null,
      num_class_embeds: null,
      only_cross_attention: false,
      out_channels: 4,
      projection_class_embeddings_input_dim: 2816,
      resnet_out_scale_factor: 1.0,
      resnet_skip_time_act: false,
      resnet_time_scale_shift: "default",
      sample_size: 128,
      time_cond_proj_dim: null,
      time_embedding_act_fn: null,
      time_embedding_dim: null,
      time_embedding_type: "positional",
      timestep_post_act: null,
      transformer_layers_per_block: [1, 2, 10],
      up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
      upcast_attention: null,
      use_linear_projection: true,
    },
    vae: vae("0.20.0.dev0", 1024, { _name_or_path: "../sdxl-vae/", force_upcast: true, scaling_factor: 0.13025 }),
    text_encoder: clipText({
      architecture: "CLIPTextModel",
      act: "quick_gelu",
      hidden: 768,
      intermediate: 3072,
      heads: 12,
      layers: 12,
      projection: 768,
      dtype: "float16",
      transformers: "4.32.0.dev0",
    }),
    text_encoder_2: clipText({
      architecture: "CLIPTextModelWithProjection",
      act: "gelu",
      hidden: 1280,
      intermediate: 5120,
      heads: 20,
      layers: 32,
      projection: 1280,
      dtype: "float16",
      transformers: "4.32.0.dev0",
    }),
  },
  scheduler: {
    _class_name: "EulerDiscreteScheduler",
    _diffusers_version: "0.19.0.dev0",
    ...SCALED_LINEAR,
    clip_sample: false,
    interpolation_type: "linear",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    sample_max_value: 1.0,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: "leading",
    trained_betas: null,
    use_karras_sigmas: false,
  },
  tokenizers: { tokenizer: "clip-l-sdxl", tokenizer_2: "open-clip" },
};

export type StandardFamily = "sd15" | "sd2" | "sdxl";

export const STANDARD_CONFIGS: Readonly<Record<StandardFamily, StandardConfigs>> = { sd15: SD15, sd2: SD21, sdxl: SDXL };

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

/**
 * Writes the configuration part of a standard pipeline folder into `dir`: model_index.json, each model component's
 * config.json (no weights), scheduler/scheduler_config.json and the tokenizer folders.
 */
export function writeStandardConfigs(family: StandardFamily, dir: string, vocabulary: ClipVocabulary = clipVocabulary()): void {
  const s = STANDARD_CONFIGS[family];
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "model_index.json"), json(s.modelIndex));
  for (const [name, config] of Object.entries(s.components)) {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, "config.json"), json(config));
  }
  mkdirSync(join(dir, "scheduler"), { recursive: true });
  writeFileSync(join(dir, "scheduler", "scheduler_config.json"), json(s.scheduler));
  for (const [name, kind] of Object.entries(s.tokenizers)) writeClipTokenizer(join(dir, name), kind, vocabulary);
}

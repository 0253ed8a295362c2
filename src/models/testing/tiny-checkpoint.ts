/**
 * Seeded tiny diffusers checkpoints (sd15, sdxl, playground, sd3, sd3_5) for tests and demos; the values come from
 * the streaming random-weight writer in ./random-safetensors.ts, which the benchmark also uses for full-size models.
 *
 * The weight names and shapes come from the graph builders themselves (`createRecordingWeights`), so a generated
 * checkpoint always holds exactly what the builders read. The SD3 transformer's builder lives in the family folder,
 * which _shared may not import (DESIGN.md §2), so SD3 callers hand it in (`TinyCheckpointOptions.transformer`). Values are uniform random numbers from a per-tensor
 * seeded PRNG with PyTorch's default init scale (bound 1/sqrt(fan_in) for matrices and kernels); 1-D `.weight`
 * tensors (norm scales) are 1 +- 0.1 and biases +-0.05, so activations stay finite through deep stacks and no
 * parameter takes a value (exactly 1 or 0) that would hide a wrongly wired scale or bias.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EaselError } from "../../core/errors.ts";
import { createRecordingWeights, type WeightSource } from "../../graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../components/clip-text.graph.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson } from "../components/t5-encoder.graph.ts";
import { buildUnetGraph } from "../components/unet.graph.ts";
import { unetConfigFromJson } from "../components/unet-config.ts";
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from "../components/vae.graph.ts";
import { vaeConfigFromJson } from "../components/vae-config.ts";
import { type RandomWeightDtype, writeRandomSafetensors } from "./random-safetensors.ts";
import { tinyT5Vocab, writeTinyT5Tokenizer } from "./tiny-t5-tokenizer.ts";

/** sd3: SD3-medium-shaped StableDiffusion3Pipeline; sd3_5: the SD3.5-large shape (qk RMS norm). */
export type TinyFamily = "sd15" | "sdxl" | "playground" | "sd3" | "sd3_5";
export const TINY_FAMILIES: readonly TinyFamily[] = ["sd15", "sdxl", "playground", "sd3", "sd3_5"];

// The writer's building blocks stay importable from here, where the benchmark and the tests have found them.
export { floatToHalfBits, initFor, mulberry32, type RandomWeightDtype, seedForTensor, writeRandomSafetensors } from "./random-safetensors.ts";
export { tinyT5Vocab } from "./tiny-t5-tokenizer.ts";

type Json = Record<string, unknown>;
/** The families whose denoiser is the shared UNet. */
type UnetFamily = Exclude<TinyFamily, "sd3" | "sd3_5">;

/**
 * Reads every weight an SD3Transformer2DModel `config.json` needs from `weights`: for Easel's own builder,
 * `(json, w) => buildMmditGraph(sd3TransformerConfigFromJson(json), w)` (src/models/sd3).
 */
export type TinyTransformerBuilder = (config: Json, weights: WeightSource) => unknown;

export interface TinyCheckpointOptions {
  family: TinyFamily;
  /** Any integer in [0, 2^32); the same seed gives byte-identical files. */
  seed: number;
  /** Stored dtype of every weight (the file names stay the plain ones); default F32. */
  dtype?: RandomWeightDtype;
  /** Required for sd3 / sd3_5, unused otherwise: the transformer graph builder whose weights are recorded. */
  transformer?: TinyTransformerBuilder;
  /**
   * sd15 / sdxl: an inpainting checkpoint (StableDiffusion(XL)InpaintPipeline, UNet in_channels 9: latents, mask,
   * masked-image latents).
   */
  inpainting?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer: a small byte-level CLIP BPE vocabulary

/** GPT-2 / CLIP byte -> unicode table in vocabulary order: the printable bytes first, then the rest mapped past 255. */
function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 0; b < 256; b++) if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) printable.push(b);
  const out = printable.map((b) => String.fromCodePoint(b));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) out.push(String.fromCodePoint(256 + extra++));
  return out;
}

/** A few merges so that common prompt words become multi-character tokens; each rule's result joins the vocab. */
const MERGES = ["t h", "th e</w>", "a n", "an d</w>", "i n", "in g</w>", "o f</w>", "c a", "ca t</w>", "d o", "do g</w>", "r e", "re d</w>"];
const BOS = "<|startoftext|>";
const EOS = "<|endoftext|>";

export function tinyClipVocab(): { vocab: Record<string, number>; merges: string[] } {
  const symbols = byteSymbols();
  const tokens = [...symbols, ...symbols.map((s) => `${s}</w>`), ...MERGES.map((m) => m.replace(" ", "")), BOS, EOS];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (Object.hasOwn(vocab, t)) throw new EaselError("E_INTERNAL", `tiny vocabulary: token "${t}" twice`);
    vocab[t] = i;
  });
  return { vocab, merges: MERGES };
}

function writeTokenizer(dir: string, pad: "<|endoftext|>" | "!"): void {
  mkdirSync(dir, { recursive: true });
  const { vocab, merges } = tinyClipVocab();
  const special = (content: string) => ({ content, lstrip: false, normalized: content !== "!", rstrip: false, single_word: false });
  const decoder: Record<string, unknown> = {};
  if (pad === "!") decoder[String(vocab["!"])] = { ...special("!"), special: true };
  decoder[String(vocab[BOS])] = { ...special(BOS), special: true };
  decoder[String(vocab[EOS])] = { ...special(EOS), special: true };
  writeJson(join(dir, "vocab.json"), vocab);
  writeFileSync(join(dir, "merges.txt"), `#version: 0.2\n${merges.join("\n")}\n`);
  writeJson(join(dir, "tokenizer_config.json"), {
    added_tokens_decoder: decoder,
    bos_token: BOS,
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: EOS,
    errors: "replace",
    model_max_length: 77,
    pad_token: pad,
    tokenizer_class: "CLIPTokenizer",
    unk_token: EOS,
  });
  writeJson(join(dir, "special_tokens_map.json"), {
    bos_token: special(BOS),
    eos_token: special(EOS),
    pad_token: special(pad),
    unk_token: special(EOS),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Component configs (shapes of the published configs, tiny widths)

/**
 * A CLIPTextModel / CLIPTextModelWithProjection `config.json` in the shape transformers publishes (SD1.5, SD2, SDXL,
 * SD3 text encoders): the tiny checkpoints here and the benchmark's full-size ones (bench/configs.ts) both write it.
 * `projection` defaults to the width, `vocabSize` to CLIP's 49408.
 */
export function clipTextConfigJson(o: { hidden: number; heads: number; layers: number; act: string; withProjection?: boolean; projection?: number; vocabSize?: number }): Json {
  return {
    architectures: [o.withProjection ? "CLIPTextModelWithProjection" : "CLIPTextModel"],
    attention_dropout: 0,
    bos_token_id: 0,
    // The legacy id 2 of the published SD configs: pooling takes argmax(ids), which is the end-of-text token here too.
    eos_token_id: 2,
    hidden_act: o.act,
    hidden_size: o.hidden,
    initializer_factor: 1,
    initializer_range: 0.02,
    intermediate_size: o.hidden * 4,
    layer_norm_eps: 1e-5,
    max_position_embeddings: 77,
    model_type: "clip_text_model",
    num_attention_heads: o.heads,
    num_hidden_layers: o.layers,
    pad_token_id: 1,
    projection_dim: o.projection ?? o.hidden,
    vocab_size: o.vocabSize ?? 49408,
  };
}

function unetConfig(family: UnetFamily): Json {
  const xl = family !== "sd15";
  return {
    _class_name: "UNet2DConditionModel",
    act_fn: "silu",
    addition_embed_type: xl ? "text_time" : null,
    addition_time_embed_dim: xl ? 8 : null,
    attention_head_dim: xl ? [2, 2] : 2,
    block_out_channels: [8, 16],
    center_input_sample: false,
    cross_attention_dim: xl ? 48 : 32,
    down_block_types: xl ? ["DownBlock2D", "CrossAttnDownBlock2D"] : ["CrossAttnDownBlock2D", "DownBlock2D"],
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 4,
    layers_per_block: 2,
    mid_block_type: "UNetMidBlock2DCrossAttn",
    norm_eps: 1e-5,
    norm_num_groups: 4,
    out_channels: 4,
    // text_embeds (text_encoder_2 projection, 32) + 6 time ids x addition_time_embed_dim (8).
    projection_class_embeddings_input_dim: xl ? 32 + 6 * 8 : null,
    sample_size: 8,
    transformer_layers_per_block: xl ? [1, 2] : 1,
    up_block_types: xl ? ["CrossAttnUpBlock2D", "UpBlock2D"] : ["UpBlock2D", "CrossAttnUpBlock2D"],
    use_linear_projection: xl,
  };
}

function vaeConfig(family: UnetFamily): Json {
  return {
    _class_name: "AutoencoderKL",
    act_fn: "silu",
    block_out_channels: [8, 8, 16, 16],
    down_block_types: new Array(4).fill("DownEncoderBlock2D"),
    force_upcast: true,
    in_channels: 3,
    latent_channels: 4,
    latents_mean: family === "playground" ? [-1.6574, 1.886, -1.383, 2.5155] : null,
    latents_std: family === "playground" ? [8.4927, 5.9022, 6.5498, 5.2299] : null,
    layers_per_block: 1,
    norm_num_groups: 4,
    out_channels: 3,
    sample_size: 64,
    scaling_factor: { sd15: 0.18215, sdxl: 0.13025, playground: 0.5 }[family],
    shift_factor: null,
    up_block_types: new Array(4).fill("UpDecoderBlock2D"),
    use_post_quant_conv: true,
    use_quant_conv: true,
  };
}

const VP = { beta_end: 0.012, beta_schedule: "scaled_linear", beta_start: 0.00085, num_train_timesteps: 1000, trained_betas: null };

function schedulerConfig(family: UnetFamily): Json {
  switch (family) {
    case "sd15":
      // runwayml/stable-diffusion-v1-5 as published: no timestep_spacing key.
      return { _class_name: "PNDMScheduler", ...VP, clip_sample: false, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1 };
    case "sdxl":
      return {
        _class_name: "EulerDiscreteScheduler",
        ...VP,
        clip_sample: false,
        interpolation_type: "linear",
        prediction_type: "epsilon",
        sample_max_value: 1,
        set_alpha_to_one: false,
        skip_prk_steps: true,
        steps_offset: 1,
        timestep_spacing: "leading",
        use_karras_sigmas: false,
      };
    case "playground":
      return {
        _class_name: "EDMDPMSolverMultistepScheduler",
        algorithm_type: "dpmsolver++",
        dynamic_thresholding_ratio: 0.995,
        euler_at_final: false,
        final_sigmas_type: "zero",
        lower_order_final: true,
        num_train_timesteps: 1000,
        prediction_type: "epsilon",
        rho: 7,
        sample_max_value: 1,
        sigma_data: 0.5,
        sigma_max: 80,
        sigma_min: 0.002,
        sigma_schedule: "karras",
        solver_order: 2,
        solver_type: "midpoint",
        thresholding: false,
      };
  }
}

function modelIndex(family: UnetFamily): Json {
  const lib = (cls: string) => [cls.startsWith("CLIP") ? "transformers" : "diffusers", cls];
  const scheduler = String(schedulerConfig(family)._class_name);
  if (family === "sd15") {
    return {
      _class_name: "StableDiffusionPipeline",
      feature_extractor: [null, null],
      image_encoder: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: lib(scheduler),
      text_encoder: lib("CLIPTextModel"),
      tokenizer: lib("CLIPTokenizer"),
      unet: lib("UNet2DConditionModel"),
      vae: lib("AutoencoderKL"),
    };
  }
  return {
    _class_name: "StableDiffusionXLPipeline",
    feature_extractor: [null, null],
    force_zeros_for_empty_prompt: true,
    image_encoder: [null, null],
    scheduler: lib(scheduler),
    text_encoder: lib("CLIPTextModel"),
    text_encoder_2: lib("CLIPTextModelWithProjection"),
    tokenizer: lib("CLIPTokenizer"),
    tokenizer_2: lib("CLIPTokenizer"),
    unet: lib("UNet2DConditionModel"),
    vae: lib("AutoencoderKL"),
  };
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

/** Writes `config.json` and the builder-recorded weights of one component folder. */
function writeComponent(
  root: string,
  name: string,
  config: Json,
  weightFile: string,
  record: (source: ReturnType<typeof createRecordingWeights>["source"]) => void,
  opts: { seed: number; dtype: RandomWeightDtype },
): void {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeJson(join(dir, "config.json"), config);
  const rec = createRecordingWeights({ dtype: opts.dtype });
  record(rec.source);
  writeRandomSafetensors(join(dir, weightFile), rec.recorded(), { seed: opts.seed, dtype: opts.dtype, namespace: name });
}

/** The vae/ folder: weights recorded from both the encoder and the decoder graph. */
function writeVae(root: string, config: Json, opts: { seed: number; dtype: RandomWeightDtype }): void {
  const cfg = vaeConfigFromJson(config);
  writeComponent(root, "vae", config, "diffusion_pytorch_model.safetensors", (src) => {
    buildVaeEncoderGraph(cfg, src);
    buildVaeDecoderGraph(cfg, src);
  }, opts);
}

/**
 * Writes a complete diffusers directory for `family` into `dir` (created if missing; existing files of the same
 * names are overwritten): model_index.json, scheduler, tokenizer(s), text encoder(s), unet and vae.
 */
export function writeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions): void {
  const { family, seed } = opts;
  const dtype = opts.dtype ?? "F32";
  if (!TINY_FAMILIES.includes(family)) {
    throw new EaselError("E_INPUT_INVALID", `family must be one of ${TINY_FAMILIES.join(", ")}, got ${JSON.stringify(family)}`, { param: "family" });
  }
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new EaselError("E_INPUT_INVALID", `seed must be an integer in [0, 2^32), got ${seed}`, { param: "seed" });
  }
  if (dtype !== "F32" && dtype !== "F16") {
    throw new EaselError("E_INPUT_INVALID", `dtype must be "F32" or "F16", got ${JSON.stringify(dtype)}`, { param: "dtype" });
  }
  const w = { seed, dtype };
  if (family === "sd3" || family === "sd3_5") {
    if (typeof opts.transformer !== "function") {
      throw new EaselError(
        "E_INPUT_INVALID",
        `transformer must be the SD3 transformer graph builder for family ${family} (src/models/sd3/mmdit.graph.ts buildMmditGraph)`,
        { param: "transformer" },
      );
    }
    writeTinySd3(dir, family, opts.transformer, w);
    return;
  }
  mkdirSync(join(dir, "scheduler"), { recursive: true });
  const index = modelIndex(family);
  if (opts.inpainting) index._class_name = family === "sd15" ? "StableDiffusionInpaintPipeline" : "StableDiffusionXLInpaintPipeline";
  writeJson(join(dir, "model_index.json"), index);
  writeJson(join(dir, "scheduler", "scheduler_config.json"), schedulerConfig(family));

  const vocabSize = Object.keys(tinyClipVocab().vocab).length;
  const xl = family !== "sd15";
  const encoders: [string, Json][] = xl
    ? [
        ["text_encoder", clipTextConfigJson({ hidden: 16, heads: 2, layers: 2, act: "quick_gelu", vocabSize })],
        ["text_encoder_2", clipTextConfigJson({ hidden: 32, heads: 4, layers: 2, act: "gelu", withProjection: true, projection: 32, vocabSize })],
      ]
    : [["text_encoder", clipTextConfigJson({ hidden: 32, heads: 4, layers: 2, act: "quick_gelu", vocabSize })]];
  for (const [name, cfg] of encoders) {
    writeComponent(dir, name, cfg, "model.safetensors", (src) => buildClipTextGraph(clipTextConfigFromJson(cfg), src), w);
  }
  writeTokenizer(join(dir, "tokenizer"), "<|endoftext|>");
  if (xl) writeTokenizer(join(dir, "tokenizer_2"), "!");

  const unet = { ...unetConfig(family), ...(opts.inpainting ? { in_channels: 9 } : {}) };
  writeComponent(dir, "unet", unet, "diffusion_pytorch_model.safetensors", (src) => buildUnetGraph(unetConfigFromJson(unet), src), w);
  writeVae(dir, vaeConfig(family), w);
}

// ---------------------------------------------------------------------------------------------------------------
// Stable Diffusion 3: two CLIPs with projection, T5, MMDiT transformer, 16-channel VAE

/** Widths of the tiny SD3: the two CLIPs (8 + 16, zero-padded to the joint width), T5 d_model = joint width. */
const SD3_CLIP = [
  { hidden: 8, heads: 2, layers: 2, act: "quick_gelu", projection: 8 },
  { hidden: 16, heads: 2, layers: 2, act: "gelu", projection: 16 },
];
const SD3_JOINT = 32;

/** A transformers T5EncoderModel `config.json` of T5 v1.1's kind (gated-gelu feed-forward, untied embeddings). */
export function t5EncoderConfigJson(o: { dModel: number; dFf: number; dKv: number; heads: number; layers: number; vocabSize: number; dropout?: number; dtype?: string }): Json {
  return {
    architectures: ["T5EncoderModel"],
    classifier_dropout: 0,
    d_ff: o.dFf,
    d_kv: o.dKv,
    d_model: o.dModel,
    decoder_start_token_id: 0,
    dense_act_fn: "gelu_new",
    dropout_rate: o.dropout ?? 0,
    eos_token_id: 1,
    feed_forward_proj: "gated-gelu",
    initializer_factor: 1,
    is_encoder_decoder: true,
    is_gated_act: true,
    layer_norm_epsilon: 1e-6,
    model_type: "t5",
    num_decoder_layers: o.layers,
    num_heads: o.heads,
    num_layers: o.layers,
    pad_token_id: 0,
    relative_attention_max_distance: 128,
    relative_attention_num_buckets: 32,
    tie_word_embeddings: false,
    torch_dtype: o.dtype ?? "float32",
    use_cache: false,
    vocab_size: o.vocabSize,
  };
}

/**
 * Positions for 1024x1024 (64 patches of 2 per side at VAE factor 8), default size 1024 (sample_size 128) as the
 * published SD3 / SD3.5 configs; sd3_5 adds SD3.5's qk RMS norm (SD3.5 large's shape: no dual attention).
 */
function sd3TransformerConfig(family: "sd3" | "sd3_5"): Json {
  return {
    _class_name: "SD3Transformer2DModel",
    attention_head_dim: 8,
    caption_projection_dim: 16,
    dual_attention_layers: [],
    in_channels: 16,
    joint_attention_dim: SD3_JOINT,
    num_attention_heads: 2,
    num_layers: 2,
    out_channels: 16,
    patch_size: 2,
    pooled_projection_dim: SD3_CLIP[0].projection + SD3_CLIP[1].projection,
    pos_embed_max_size: 64,
    qk_norm: family === "sd3_5" ? "rms_norm" : null,
    sample_size: 128,
  };
}

function sd3VaeConfig(): Json {
  return {
    ...vaeConfig("sdxl"),
    latent_channels: 16,
    // The 1024x1024 decode would spend most of its time in a 16384-token mid-block attention; tests need speed.
    mid_block_add_attention: false,
    scaling_factor: 1.5305,
    shift_factor: 0.0609,
    use_post_quant_conv: false,
    use_quant_conv: false,
  };
}

const SD3_SCHEDULER: Json = {
  _class_name: "FlowMatchEulerDiscreteScheduler",
  base_image_seq_len: 256,
  base_shift: 0.5,
  invert_sigmas: false,
  max_image_seq_len: 4096,
  max_shift: 1.15,
  num_train_timesteps: 1000,
  shift: 3.0,
  shift_terminal: null,
  use_beta_sigmas: false,
  use_dynamic_shifting: false,
  use_exponential_sigmas: false,
  use_karras_sigmas: false,
};

const SD3_INDEX: Json = {
  _class_name: "StableDiffusion3Pipeline",
  feature_extractor: [null, null],
  image_encoder: [null, null],
  scheduler: ["diffusers", "FlowMatchEulerDiscreteScheduler"],
  text_encoder: ["transformers", "CLIPTextModelWithProjection"],
  text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
  text_encoder_3: ["transformers", "T5EncoderModel"],
  tokenizer: ["transformers", "CLIPTokenizer"],
  tokenizer_2: ["transformers", "CLIPTokenizer"],
  tokenizer_3: ["transformers", "T5Tokenizer"],
  transformer: ["diffusers", "SD3Transformer2DModel"],
  vae: ["diffusers", "AutoencoderKL"],
};

function writeTinySd3(dir: string, family: "sd3" | "sd3_5", transformer: TinyTransformerBuilder, w: { seed: number; dtype: RandomWeightDtype }): void {
  mkdirSync(join(dir, "scheduler"), { recursive: true });
  writeJson(join(dir, "model_index.json"), SD3_INDEX);
  writeJson(join(dir, "scheduler", "scheduler_config.json"), SD3_SCHEDULER);

  const clipVocab = Object.keys(tinyClipVocab().vocab).length;
  SD3_CLIP.forEach((c, i) => {
    const cfg = clipTextConfigJson({ ...c, withProjection: true, vocabSize: clipVocab });
    writeComponent(dir, i === 0 ? "text_encoder" : "text_encoder_2", cfg, "model.safetensors", (src) => buildClipTextGraph(clipTextConfigFromJson(cfg), src), w);
  });
  writeTokenizer(join(dir, "tokenizer"), "<|endoftext|>");
  writeTokenizer(join(dir, "tokenizer_2"), "!");

  const t5 = t5EncoderConfigJson({ dModel: SD3_JOINT, dFf: 64, dKv: 8, heads: 4, layers: 2, vocabSize: tinyT5Vocab().length });
  writeComponent(dir, "text_encoder_3", t5, "model.safetensors", (src) => buildT5EncoderGraph(t5EncoderConfigFromJson(t5), src), w);
  writeTinyT5Tokenizer(join(dir, "tokenizer_3"));

  const tcfg = sd3TransformerConfig(family);
  writeComponent(dir, "transformer", tcfg, "diffusion_pytorch_model.safetensors", (src) => transformer(tcfg, src), w);
  writeVae(dir, sd3VaeConfig(), w);
}

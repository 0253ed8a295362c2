/**
 * UNet2DConditionModel `config.json` -> the resolved per-level settings the graph builder needs, with diffusers'
 * defaults and its naming quirk: `attention_head_dim` is the number of heads when `num_attention_heads` is unset.
 * Features the graph does not implement are rejected with E_NOT_SUPPORTED naming the key.
 */
import { EaselError } from "../../core/errors.ts";

export type DownBlockType = "DownBlock2D" | "CrossAttnDownBlock2D";
export type UpBlockType = "UpBlock2D" | "CrossAttnUpBlock2D";

export interface UnetConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  /** Per down level (up level i uses layersPerBlock[reversed i] + 1). */
  layersPerBlock: number[];
  /** Heads per down level. */
  heads: number[];
  transformerLayers: number[];
  /** Per up level (already reversed). */
  upTransformerLayers: number[];
  crossAttentionDim: number[];
  useLinearProjection: boolean;
  normGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
  timeEmbedDim: number;
  downsamplePadding: number;
  midBlock: boolean;
  /** SDXL micro-conditioning (`addition_embed_type: "text_time"`). */
  textTime?: { timeEmbedDim: number; projectionInputDim: number };
}

type Json = Record<string, unknown>;

function fail(file: string, key: string, msg: string, code: "E_CHECKPOINT_INVALID" | "E_NOT_SUPPORTED" = "E_CHECKPOINT_INVALID"): EaselError {
  return new EaselError(code, `${file}: "${key}" ${msg}`, { details: { file, key } });
}

function int(json: Json, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw fail(file, key, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/** A number broadcast to `n` levels, or a list of exactly n. */
function perLevel(json: Json, key: string, file: string, n: number, fallback?: number): number[] {
  const v = json[key] ?? fallback;
  if (typeof v === "number" && Number.isInteger(v)) return new Array(n).fill(v);
  if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === "number" && Number.isInteger(x))) return v as number[];
  throw fail(file, key, `must be an integer or a list of ${n} integers, got ${JSON.stringify(v)}`);
}

/** Keys whose non-default values change the architecture in ways this graph does not build. */
const UNSUPPORTED: [string, unknown][] = [
  ["class_embed_type", null],
  ["encoder_hid_dim_type", null],
  ["time_cond_proj_dim", null],
  ["time_embedding_act_fn", null],
  ["timestep_post_act", null],
  ["num_class_embeds", null],
  ["dual_cross_attention", false],
  ["only_cross_attention", false],
  ["center_input_sample", false],
  ["resnet_time_scale_shift", "default"],
  ["time_embedding_type", "positional"],
  ["attention_type", "default"],
  ["conv_in_kernel", 3],
  ["conv_out_kernel", 3],
  ["act_fn", "silu"],
  ["mid_block_scale_factor", 1],
  ["resnet_out_scale_factor", 1],
  ["resnet_skip_time_act", false],
];

export function unetConfigFromJson(json: Json, file = "unet/config.json"): UnetConfig {
  for (const [key, ok] of UNSUPPORTED) {
    const v = json[key];
    if (v !== undefined && v !== ok && !(Array.isArray(v) && v.every((x) => x === ok))) {
      throw fail(file, key, `= ${JSON.stringify(v)} is not supported (only ${JSON.stringify(ok)})`, "E_NOT_SUPPORTED");
    }
  }
  const blockOutChannels = json.block_out_channels;
  if (!Array.isArray(blockOutChannels) || blockOutChannels.length === 0 || !blockOutChannels.every((x) => Number.isInteger(x) && x > 0)) {
    throw fail(file, "block_out_channels", "must be a non-empty list of positive integers");
  }
  const n = blockOutChannels.length;
  const down = json.down_block_types as unknown[];
  const up = json.up_block_types as unknown[];
  const downOk: unknown[] = ["DownBlock2D", "CrossAttnDownBlock2D"];
  const upOk: unknown[] = ["UpBlock2D", "CrossAttnUpBlock2D"];
  if (!Array.isArray(down) || down.length !== n || !down.every((t) => downOk.includes(t))) {
    throw fail(file, "down_block_types", `must list ${n} of ${downOk.join(", ")}; got ${JSON.stringify(down)}`, "E_NOT_SUPPORTED");
  }
  if (!Array.isArray(up) || up.length !== n || !up.every((t) => upOk.includes(t))) {
    throw fail(file, "up_block_types", `must list ${n} of ${upOk.join(", ")}; got ${JSON.stringify(up)}`, "E_NOT_SUPPORTED");
  }
  // diffusers: an explicit null means no mid block; only a missing key takes the default.
  const midType = json.mid_block_type === undefined ? "UNetMidBlock2DCrossAttn" : json.mid_block_type;
  if (midType !== "UNetMidBlock2DCrossAttn" && midType !== null) {
    throw fail(file, "mid_block_type", `= ${JSON.stringify(midType)} is not supported`, "E_NOT_SUPPORTED");
  }
  const headsKey = json.num_attention_heads != null ? "num_attention_heads" : "attention_head_dim";
  const heads = perLevel(json, headsKey, file, n, 8);
  const transformerLayers = perLevel(json, "transformer_layers_per_block", file, n, 1);
  const reverse = json.reverse_transformer_layers_per_block;
  if (reverse != null) throw fail(file, "reverse_transformer_layers_per_block", "is not supported", "E_NOT_SUPPORTED");
  const addType = json.addition_embed_type ?? null;
  let textTime: UnetConfig["textTime"];
  if (addType === "text_time") {
    textTime = {
      timeEmbedDim: int(json, "addition_time_embed_dim", file),
      projectionInputDim: int(json, "projection_class_embeddings_input_dim", file),
    };
  } else if (addType !== null) {
    throw fail(file, "addition_embed_type", `= ${JSON.stringify(addType)} is not supported (null or "text_time")`, "E_NOT_SUPPORTED");
  }
  const cfg: UnetConfig = {
    inChannels: int(json, "in_channels", file, 4),
    outChannels: int(json, "out_channels", file, 4),
    blockOutChannels: blockOutChannels as number[],
    downBlockTypes: down as DownBlockType[],
    upBlockTypes: up as UpBlockType[],
    layersPerBlock: perLevel(json, "layers_per_block", file, n, 2),
    heads,
    transformerLayers,
    upTransformerLayers: [...transformerLayers].reverse(),
    crossAttentionDim: perLevel(json, "cross_attention_dim", file, n, 1280),
    useLinearProjection: json.use_linear_projection === true,
    normGroups: int(json, "norm_num_groups", file, 32),
    normEps: typeof json.norm_eps === "number" ? json.norm_eps : 1e-5,
    flipSinToCos: json.flip_sin_to_cos !== false,
    freqShift: int(json, "freq_shift", file, 0),
    timeEmbedDim: json.time_embedding_dim == null ? (blockOutChannels[0] as number) * 4 : int(json, "time_embedding_dim", file),
    downsamplePadding: int(json, "downsample_padding", file, 1),
    midBlock: midType !== null,
    textTime,
  };
  for (const [i, c] of cfg.blockOutChannels.entries()) {
    if (c % cfg.normGroups !== 0) throw fail(file, "norm_num_groups", `(${cfg.normGroups}) must divide block_out_channels[${i}] = ${c}`);
    if (c % cfg.heads[i] !== 0) throw fail(file, headsKey, `(${cfg.heads[i]} heads) must divide block_out_channels[${i}] = ${c}`);
  }
  return cfg;
}

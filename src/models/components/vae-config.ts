/**
 * AutoencoderKL `config.json` (diffusers `autoencoders/autoencoder_kl.py`) -> the settings the VAE graphs and the
 * pipelines' latent scaling need, with diffusers' defaults. Architecture options the graphs do not build are
 * rejected with E_NOT_SUPPORTED naming the key.
 */
import { EaselError } from "../../core/errors.ts";

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  /** Resnets per encoder level; the decoder has one more per level. */
  layersPerBlock: number;
  normGroups: number;
  midBlockAttention: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  scalingFactor: number;
  shiftFactor: number | null;
  latentsMean: number[] | null;
  latentsStd: number[] | null;
  forceUpcast: boolean;
}

type Json = Record<string, unknown>;

function fail(file: string, key: string, msg: string, code: "E_CHECKPOINT_INVALID" | "E_NOT_SUPPORTED" = "E_CHECKPOINT_INVALID"): EaselError {
  return new EaselError(code, `${file}: "${key}" ${msg}`, { details: { file, key } });
}

function posInt(json: Json, key: string, file: string, fallback: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw fail(file, key, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function num(json: Json, key: string, file: string, fallback: number | null): number | null {
  const v = json[key] ?? fallback;
  if (v !== null && (typeof v !== "number" || !Number.isFinite(v))) throw fail(file, key, `must be a number or null, got ${JSON.stringify(v)}`);
  return v;
}

function numList(json: Json, key: string, file: string, n: number): number[] | null {
  const v = json[key] ?? null;
  if (v === null) return null;
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw fail(file, key, `must be null or a list of ${n} numbers (latent_channels), got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

export function vaeConfigFromJson(json: Json, file = "vae/config.json"): VaeConfig {
  const blocks = json.block_out_channels ?? [64];
  if (!Array.isArray(blocks) || blocks.length === 0 || !blocks.every((c) => Number.isInteger(c) && c > 0)) {
    throw fail(file, "block_out_channels", `must be a non-empty list of positive integers, got ${JSON.stringify(blocks)}`);
  }
  const n = blocks.length;
  for (const [key, ok] of [
    ["down_block_types", "DownEncoderBlock2D"],
    ["up_block_types", "UpDecoderBlock2D"],
  ] as const) {
    const v = json[key] ?? new Array(n).fill(ok);
    if (!Array.isArray(v) || v.length !== n || !v.every((t) => t === ok)) {
      throw fail(file, key, `must list ${n} x "${ok}", got ${JSON.stringify(v)}`, "E_NOT_SUPPORTED");
    }
  }
  if ((json.act_fn ?? "silu") !== "silu") throw fail(file, "act_fn", `= ${JSON.stringify(json.act_fn)} is not supported (only "silu")`, "E_NOT_SUPPORTED");
  if ((json.norm_type ?? "group") !== "group") {
    throw fail(file, "norm_type", `= ${JSON.stringify(json.norm_type)} is not supported (only "group")`, "E_NOT_SUPPORTED");
  }
  const latentChannels = posInt(json, "latent_channels", file, 4);
  const cfg: VaeConfig = {
    inChannels: posInt(json, "in_channels", file, 3),
    outChannels: posInt(json, "out_channels", file, 3),
    latentChannels,
    blockOutChannels: blocks as number[],
    layersPerBlock: posInt(json, "layers_per_block", file, 1),
    normGroups: posInt(json, "norm_num_groups", file, 32),
    midBlockAttention: json.mid_block_add_attention !== false,
    useQuantConv: json.use_quant_conv !== false,
    usePostQuantConv: json.use_post_quant_conv !== false,
    scalingFactor: num(json, "scaling_factor", file, 0.18215)!,
    shiftFactor: num(json, "shift_factor", file, null),
    latentsMean: numList(json, "latents_mean", file, latentChannels),
    latentsStd: numList(json, "latents_std", file, latentChannels),
    forceUpcast: json.force_upcast !== false,
  };
  for (const [i, c] of cfg.blockOutChannels.entries()) {
    if (c % cfg.normGroups !== 0) throw fail(file, "norm_num_groups", `(${cfg.normGroups}) must divide block_out_channels[${i}] = ${c}`);
  }
  if ((cfg.latentsMean === null) !== (cfg.latentsStd === null)) {
    throw fail(file, "latents_std", "and latents_mean must be both set or both null");
  }
  return cfg;
}

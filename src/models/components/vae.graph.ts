/**
 * AutoencoderKL encoder and decoder graphs (diffusers `autoencoders/vae.py` Encoder/Decoder, `UNetMidBlock2D`,
 * `DownEncoderBlock2D`/`UpDecoderBlock2D`; ResnetBlock2D without time embedding; every GroupNorm eps 1e-6).
 *
 * - decoder: `latent` [B, L, h, w], already un-scaled (the pipeline's `latents / scaling_factor` etc.) ->
 *   post_quant_conv (if any) -> conv_in -> mid (resnet, attention, resnet) -> up levels (nearest x2 + conv except
 *   the last) -> GN -> SiLU -> conv_out -> `sample` [B, 3, 8h, 8w] (about [-1, 1]).
 * - encoder: `image` [B, 3, H, W] in [-1, 1] -> conv_in -> down levels (pad right/bottom by one, then 3x3 stride-2
 *   conv, except the last) -> mid -> GN -> SiLU -> conv_out -> quant_conv (if any) -> `moments` [B, 2L, H/8, W/8]
 *   (channels [mean, logvar], logvar not yet clamped).
 */
import { EaselError } from "../../core/errors.ts";
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { conv2d, groupNorm, scaledDotProductAttention, silu } from "../../graph/ops/nn.ts";
import { reshape, shapeOf, transpose } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";
import { resnetBlock2D, upsample2D } from "./blocks.ts";
import type { VaeConfig } from "./vae-config.ts";

const EPS = 1e-6;

/**
 * A mid-block attention projection [C] -> [C]: diffusers names (`to_q`, `to_k`, `to_v`, `to_out.0`) or the legacy
 * ones (`query`, `key`, `value`, `proj_attn`), each stored [C, C] or, in some converted files, as a 1x1 conv
 * [C, C, 1, 1]. x [B, HW, C] -> [B, HW, C].
 */
function attnProjection(g: GraphBuilder, x: Value, prefix: string, name: "to_q" | "to_k" | "to_v" | "to_out.0", c: number): Value {
  const legacy = { to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" }[name];
  const key = g.weights.has(`${prefix}.${name}.weight`) || !g.weights.has(`${prefix}.${legacy}.weight`) ? `${prefix}.${name}` : `${prefix}.${legacy}`;
  let w: Value;
  try {
    w = g.weight(`${key}.weight`, [c, c]);
  } catch (e) {
    if (!(e instanceof EaselError) || !/has shape \[\d+, \d+, 1, 1\]/.test(e.message)) throw e;
    w = reshape(g, g.weight(`${key}.weight`, [c, c, 1, 1]), [c, c]);
  }
  const y = g.op("MatMul", [x, transpose(g, w, [1, 0])]);
  return g.op("Add", [y, g.weight(`${key}.bias`, [c])]);
}

/** The VAE mid-block self-attention: 1 head of width C, GroupNorm first, residual added. x [B, C, H, W]. */
function vaeAttention(g: GraphBuilder, x: Value, prefix: string, c: number, groups: number): Value {
  const normKey = g.weights.has(`${prefix}.group_norm.weight`) || !g.weights.has(`${prefix}.norm.weight`) ? "group_norm" : "norm";
  const h = groupNorm(g, x, `${prefix}.${normKey}`, { channels: c, groups, eps: EPS });
  const tokens = transpose(g, reshape(g, h, [0, c, -1]), [0, 2, 1]); // [B, HW, C]
  const q = attnProjection(g, tokens, prefix, "to_q", c);
  const k = attnProjection(g, tokens, prefix, "to_k", c);
  const v = attnProjection(g, tokens, prefix, "to_v", c);
  const a = scaledDotProductAttention(g, q, k, v, { heads: 1, headDim: c }); // [B, HW, C]
  const out = attnProjection(g, a, prefix, "to_out.0", c);
  const back = g.op("Reshape", [transpose(g, out, [0, 2, 1]), shapeOf(g, x)]); // [B, C, H, W]
  return g.op("Add", [back, x]);
}

function midBlock(g: GraphBuilder, x: Value, prefix: string, cfg: VaeConfig): Value {
  const c = cfg.blockOutChannels[cfg.blockOutChannels.length - 1];
  const res = { inChannels: c, outChannels: c, groups: cfg.normGroups, eps: EPS };
  let h = resnetBlock2D(g, x, null, `${prefix}.resnets.0`, res);
  if (cfg.midBlockAttention) h = vaeAttention(g, h, `${prefix}.attentions.0`, c, cfg.normGroups);
  return resnetBlock2D(g, h, null, `${prefix}.resnets.1`, res);
}

/** Encoder body (+ quant_conv): image [B, Cin, H, W] -> moments [B, 2L, H/2^(n-1), W/2^(n-1)]. */
export function vaeEncoder(g: GraphBuilder, image: Value, cfg: VaeConfig): Value {
  const chs = cfg.blockOutChannels;
  const L2 = 2 * cfg.latentChannels;
  let h = conv2d(g, image, "encoder.conv_in", { inChannels: cfg.inChannels, outChannels: chs[0], kernel: 3, padding: 1 });
  let cin = chs[0];
  for (let i = 0; i < chs.length; i++) {
    const cout = chs[i];
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = resnetBlock2D(g, h, null, `encoder.down_blocks.${i}.resnets.${j}`, {
        inChannels: j === 0 ? cin : cout,
        outChannels: cout,
        groups: cfg.normGroups,
        eps: EPS,
      });
    }
    if (i < chs.length - 1) {
      // Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv without padding.
      const padded = g.op("Pad", [h, g.i64([0, 0, 0, 0, 0, 0, 1, 1])]); // [B, C, H+1, W+1]
      h = conv2d(g, padded, `encoder.down_blocks.${i}.downsamplers.0.conv`, { inChannels: cout, outChannels: cout, kernel: 3, stride: 2 });
    }
    cin = cout;
  }
  const top = chs[chs.length - 1];
  h = midBlock(g, h, "encoder.mid_block", cfg);
  h = silu(g, groupNorm(g, h, "encoder.conv_norm_out", { channels: top, groups: cfg.normGroups, eps: EPS }));
  h = conv2d(g, h, "encoder.conv_out", { inChannels: top, outChannels: L2, kernel: 3, padding: 1 });
  if (cfg.useQuantConv) h = conv2d(g, h, "quant_conv", { inChannels: L2, outChannels: L2, kernel: 1 });
  return h;
}

/** (post_quant_conv +) decoder body: latent [B, L, h, w] -> sample [B, Cout, h*2^(n-1), w*2^(n-1)]. */
export function vaeDecoder(g: GraphBuilder, latent: Value, cfg: VaeConfig): Value {
  const L = cfg.latentChannels;
  const rev = [...cfg.blockOutChannels].reverse();
  let h = latent;
  if (cfg.usePostQuantConv) h = conv2d(g, h, "post_quant_conv", { inChannels: L, outChannels: L, kernel: 1 });
  h = conv2d(g, h, "decoder.conv_in", { inChannels: L, outChannels: rev[0], kernel: 3, padding: 1 });
  h = midBlock(g, h, "decoder.mid_block", cfg);
  let cin = rev[0];
  for (let i = 0; i < rev.length; i++) {
    const cout = rev[i];
    for (let j = 0; j < cfg.layersPerBlock + 1; j++) {
      h = resnetBlock2D(g, h, null, `decoder.up_blocks.${i}.resnets.${j}`, {
        inChannels: j === 0 ? cin : cout,
        outChannels: cout,
        groups: cfg.normGroups,
        eps: EPS,
      });
    }
    if (i < rev.length - 1) h = upsample2D(g, h, `decoder.up_blocks.${i}.upsamplers.0`, cout);
    cin = cout;
  }
  const bottom = cfg.blockOutChannels[0];
  h = silu(g, groupNorm(g, h, "decoder.conv_norm_out", { channels: bottom, groups: cfg.normGroups, eps: EPS }));
  return conv2d(g, h, "decoder.conv_out", { inChannels: bottom, outChannels: cfg.outChannels, kernel: 3, padding: 1 });
}

/** Graph `vae_decoder`: input `latent` [batch, L, height, width] -> output `sample`. */
export function buildVaeDecoderGraph(cfg: VaeConfig, weights: WeightSource): BuiltGraph {
  const g = new GraphBuilder({ name: "vae_decoder", weights });
  const latent = g.input("latent", "float32", ["batch", cfg.latentChannels, "height", "width"]);
  g.output(vaeDecoder(g, latent, cfg), "sample", "float32", ["batch", cfg.outChannels, "out_height", "out_width"]);
  return g.build();
}

/** Graph `vae_encoder`: input `image` [batch, 3, height, width] in [-1, 1] -> output `moments` [batch, 2L, h, w]. */
export function buildVaeEncoderGraph(cfg: VaeConfig, weights: WeightSource): BuiltGraph {
  const g = new GraphBuilder({ name: "vae_encoder", weights });
  const image = g.input("image", "float32", ["batch", cfg.inChannels, "height", "width"]);
  g.output(vaeEncoder(g, image, cfg), "moments", "float32", ["batch", 2 * cfg.latentChannels, "latent_height", "latent_width"]);
  return g.build();
}

/**
 * Graph blocks shared by the diffusers models (diffusers `embeddings.py`, `resnet.py`, `attention.py`,
 * `attention_processor.py`, `transformers/transformer_2d.py`). Keys are diffusers checkpoint keys under `prefix`.
 */
import type { GraphBuilder, Value } from "../../graph/builder.ts";
import { conv2d, geglu, groupNorm, layerNorm, linear, scaledDotProductAttention, silu } from "../../graph/ops/nn.ts";
import { concat, reshape, shapeOf, slice, transpose, unsqueeze } from "../../graph/ops/shape.ts";

/**
 * get_timestep_embedding: t [N] -> [N, dim]; freq_j = exp(-ln(10000) j / (half - freqShift)), [sin, cos] or
 * [cos, sin] when flipped. The frequencies are rounded to float32 at each step like torch's float32 arange math.
 */
export function timestepSinusoid(g: GraphBuilder, t: Value, dim: number, o: { flipSinToCos: boolean; freqShift: number }): Value {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const freqs = Array.from({ length: half }, (_, j) => f(Math.exp(f(f(f(-Math.log(10000)) * j) / (half - o.freqShift)))));
  const arg = g.op("Mul", [unsqueeze(g, t, [1]), g.f32(freqs, [1, half])]); // [N, half]
  const sin = g.op("Sin", [arg]);
  const cos = g.op("Cos", [arg]);
  const emb = concat(g, o.flipSinToCos ? [cos, sin] : [sin, cos], 1); // [N, 2*half]
  if (dim % 2 === 1) return g.op("Pad", [emb, g.i64([0, 0, 0, 1])]);
  return emb;
}

/** TimestepEmbedding: linear_1 -> SiLU -> linear_2. */
export function timestepEmbedding(g: GraphBuilder, x: Value, prefix: string, inDim: number, outDim: number): Value {
  return linear(g, silu(g, linear(g, x, `${prefix}.linear_1`, inDim, outDim)), `${prefix}.linear_2`, outDim, outDim);
}

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** Width of the time embedding; undefined = no `time_emb_proj` (VAE). */
  tembChannels?: number;
  groups: number;
  eps: number;
}

/**
 * ResnetBlock2D (time_embedding_norm "default", output scale 1):
 * conv1(SiLU(GN1 x)) + time_emb_proj(SiLU temb) -> conv2(SiLU(GN2 h)) + shortcut(x). x [B, Cin, H, W] -> [B, Cout, H, W].
 */
export function resnetBlock2D(g: GraphBuilder, x: Value, temb: Value | null, prefix: string, o: ResnetOptions): Value {
  let h = silu(g, groupNorm(g, x, `${prefix}.norm1`, { channels: o.inChannels, groups: o.groups, eps: o.eps }));
  h = conv2d(g, h, `${prefix}.conv1`, { inChannels: o.inChannels, outChannels: o.outChannels, kernel: 3, padding: 1 });
  if (temb && o.tembChannels) {
    const t = linear(g, silu(g, temb), `${prefix}.time_emb_proj`, o.tembChannels, o.outChannels); // [B, Cout]
    h = g.op("Add", [h, unsqueeze(g, t, [2, 3])]);
  }
  h = silu(g, groupNorm(g, h, `${prefix}.norm2`, { channels: o.outChannels, groups: o.groups, eps: o.eps }));
  h = conv2d(g, h, `${prefix}.conv2`, { inChannels: o.outChannels, outChannels: o.outChannels, kernel: 3, padding: 1 });
  const shortcut =
    o.inChannels === o.outChannels
      ? x
      : conv2d(g, x, `${prefix}.conv_shortcut`, { inChannels: o.inChannels, outChannels: o.outChannels, kernel: 1 });
  return g.op("Add", [shortcut, h]);
}

/** Downsample2D with a conv: 3x3, stride 2, symmetric padding (`<prefix>.conv`). */
export function downsample2D(g: GraphBuilder, x: Value, prefix: string, channels: number, padding = 1): Value {
  return conv2d(g, x, `${prefix}.conv`, { inChannels: channels, outChannels: channels, kernel: 3, stride: 2, padding });
}

/**
 * Upsample2D: nearest-neighbour to twice the size, or to the spatial size of `sizeLike` (diffusers'
 * `upsample_size`, needed when the latent size is not divisible by 2^levels), then a 3x3 conv.
 */
export function upsample2D(g: GraphBuilder, x: Value, prefix: string, channels: number, sizeLike?: Value): Value {
  const nearest = { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" };
  let up: Value;
  if (sizeLike) {
    const sizes = concat(g, [slice(g, shapeOf(g, x), [0], [2], [0]), slice(g, shapeOf(g, sizeLike), [2], [4], [0])], 0);
    up = g.op("Resize", [x, null, null, sizes], nearest);
  } else {
    up = g.op("Resize", [x, null, g.f32([1, 1, 2, 2])], nearest);
  }
  return conv2d(g, up, `${prefix}.conv`, { inChannels: channels, outChannels: channels, kernel: 3, padding: 1 });
}

/**
 * diffusers Attention with the default processor: to_q/to_k/to_v (no bias), multi-head SDPA (scale head_dim^-0.5),
 * to_out.0 (bias). x [B, L, queryDim], ctx [B, Lc, crossDim] (self-attention when ctx is null).
 */
export function attention(
  g: GraphBuilder,
  x: Value,
  ctx: Value | null,
  prefix: string,
  o: { queryDim: number; crossDim?: number; heads: number; headDim: number; qkvBias?: boolean },
): Value {
  const inner = o.heads * o.headDim;
  const kvIn = ctx ?? x;
  const kvDim = ctx ? (o.crossDim ?? o.queryDim) : o.queryDim;
  const bias = o.qkvBias ?? false;
  const q = linear(g, x, `${prefix}.to_q`, o.queryDim, inner, { bias });
  const k = linear(g, kvIn, `${prefix}.to_k`, kvDim, inner, { bias });
  const v = linear(g, kvIn, `${prefix}.to_v`, kvDim, inner, { bias });
  const a = scaledDotProductAttention(g, q, k, v, { heads: o.heads, headDim: o.headDim }); // [B, L, inner]
  return linear(g, a, `${prefix}.to_out.0`, inner, o.queryDim);
}

/** BasicTransformerBlock (layer_norm, eps 1e-5): self-attention, cross-attention, GEGLU feed-forward; x [B, L, C]. */
export function basicTransformerBlock(
  g: GraphBuilder,
  x: Value,
  ctx: Value,
  prefix: string,
  o: { dim: number; heads: number; headDim: number; crossDim: number },
): Value {
  const ln = (v: Value, n: string) => layerNorm(g, v, `${prefix}.${n}`, { dim: o.dim, eps: 1e-5 });
  let h = g.op("Add", [x, attention(g, ln(x, "norm1"), null, `${prefix}.attn1`, { queryDim: o.dim, heads: o.heads, headDim: o.headDim })]);
  h = g.op("Add", [
    h,
    attention(g, ln(h, "norm2"), ctx, `${prefix}.attn2`, { queryDim: o.dim, crossDim: o.crossDim, heads: o.heads, headDim: o.headDim }),
  ]);
  const inner = o.dim * 4;
  const ff = linear(g, geglu(g, ln(h, "norm3"), `${prefix}.ff.net.0.proj`, o.dim, inner), `${prefix}.ff.net.2`, inner, o.dim);
  return g.op("Add", [h, ff]);
}

export interface Transformer2DOptions {
  channels: number;
  heads: number;
  layers: number;
  crossDim: number;
  groups: number;
  useLinearProjection: boolean;
}

/**
 * Transformer2DModel (continuous input): GN(eps 1e-6) -> proj_in (1x1 conv, or Linear after flattening) ->
 * BasicTransformerBlock x layers -> proj_out -> + residual. x [B, C, H, W], ctx [B, Lc, crossDim].
 */
export function transformer2D(g: GraphBuilder, x: Value, ctx: Value, prefix: string, o: Transformer2DOptions): Value {
  const C = o.channels;
  const headDim = C / o.heads;
  const inner = o.heads * headDim;
  const flatten = (v: Value, ch: number) => transpose(g, reshape(g, v, [0, ch, -1]), [0, 2, 1]); // [B, HW, ch]
  const unflatten = (v: Value) => g.op("Reshape", [transpose(g, v, [0, 2, 1]), shapeOf(g, x)]); // [B, C, H, W]
  const normed = groupNorm(g, x, `${prefix}.norm`, { channels: C, groups: o.groups, eps: 1e-6 });
  let h: Value;
  if (o.useLinearProjection) h = linear(g, flatten(normed, C), `${prefix}.proj_in`, C, inner);
  else h = flatten(conv2d(g, normed, `${prefix}.proj_in`, { inChannels: C, outChannels: inner, kernel: 1 }), inner);
  for (let k = 0; k < o.layers; k++) {
    h = basicTransformerBlock(g, h, ctx, `${prefix}.transformer_blocks.${k}`, { dim: inner, heads: o.heads, headDim, crossDim: o.crossDim });
  }
  const out = o.useLinearProjection
    ? unflatten(linear(g, h, `${prefix}.proj_out`, inner, C))
    : conv2d(g, unflatten(h), `${prefix}.proj_out`, { inChannels: inner, outChannels: C, kernel: 1 });
  return g.op("Add", [out, x]);
}

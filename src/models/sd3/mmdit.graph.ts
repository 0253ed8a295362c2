/**
 * SD3Transformer2DModel (MMDiT, Esser et al. 2024; diffusers `transformers/transformer_sd3.py`, `attention.py`
 * JointTransformerBlock, `attention_processor.py` JointAttnProcessor2_0, `normalization.py` AdaLayerNormZero /
 * SD35AdaLayerNormZeroX / AdaLayerNormContinuous / RMSNorm) as an ONNX graph, driven by the config so SD3 medium
 * and SD3.5 large / large-turbo / medium (qk RMS norm, dual attention) load unchanged. Keys are diffusers keys.
 */
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { conv2d, geluTanh, linear, scaledDotProductAttention, silu } from "../../graph/ops/nn.ts";
import { concat, reshape, shapeOf, slice, split, transpose, unsqueeze } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";
import { timestepEmbedding, timestepSinusoid } from "../components/blocks.ts";
import type { Sd3TransformerConfig } from "./config.ts";

export interface MmditGraphOptions {
  /**
   * Also output module outputs as `hook:<module>`: pos_embed, time_text_embed, context_embedder,
   * transformer_blocks.{i} (context stream; not for the last block), transformer_blocks.{i}.out1 (image stream),
   * norm_out, proj_out.
   */
  hooks?: boolean;
}

const EPS = 1e-6;

/** LayerNorm over the last axis without affine parameters. */
function plainLayerNorm(g: GraphBuilder, x: Value, dim: number): Value {
  return g.op("LayerNormalization", [x, g.f32(new Array(dim).fill(1))], { axis: -1, epsilon: EPS });
}

/** diffusers RMSNorm over the last axis (fp32 statistics), times `weight`. */
function rmsNorm(g: GraphBuilder, x: Value, key: string, dim: number): Value {
  const variance = g.op("ReduceMean", [g.op("Mul", [x, x])], { axes: [-1], keepdims: 1 });
  const normed = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [variance, g.f32(EPS)])])]);
  return g.op("Mul", [normed, g.weight(key, [dim])]);
}

/** Per-head RMS norm of a projection x [B, L, H*Dh] (q or k). */
function headRmsNorm(g: GraphBuilder, x: Value, key: string, heads: number, headDim: number): Value {
  const h = reshape(g, x, [0, 0, heads, headDim]); // [B, L, H, Dh]
  return reshape(g, rmsNorm(g, h, key, headDim), [0, 0, heads * headDim]);
}

/** x * (1 + scale) + shift with scale/shift [B, D] broadcast over tokens. x [B, L, D]. */
function modulate(g: GraphBuilder, x: Value, shift: Value, scale: Value): Value {
  const s = unsqueeze(g, scale, [1]);
  return g.op("Add", [g.op("Mul", [x, g.op("Add", [s, g.f32(1)])]), unsqueeze(g, shift, [1])]);
}

/** gate [B, D] * x [B, L, D]. */
function gated(g: GraphBuilder, gate: Value, x: Value): Value {
  return g.op("Mul", [unsqueeze(g, gate, [1]), x]);
}

/** The AdaLN modulation vectors: Linear(SiLU(temb)) split into `n` chunks of [B, D]. */
function adaChunks(g: GraphBuilder, temb: Value, prefix: string, dim: number, n: number): Value[] {
  return split(g, linear(g, silu(g, temb), `${prefix}.linear`, dim, n * dim), n, 1);
}

/** FeedForward(dim, activation "gelu-approximate"): net.0.proj -> tanh GELU -> net.2. */
function feedForward(g: GraphBuilder, x: Value, prefix: string, dim: number): Value {
  return linear(g, geluTanh(g, linear(g, x, `${prefix}.net.0.proj`, dim, 4 * dim)), `${prefix}.net.2`, 4 * dim, dim);
}

/**
 * Inputs: `hidden_states` f32 [B, C_in, H, W] (H, W even and <= 2 * pos_embed_max_size), `timestep` f32 [B]
 * (sigma * 1000), `encoder_hidden_states` f32 [B, S, joint_attention_dim], `pooled_projections` f32 [B, P].
 * Output: `sample` f32 [B, C_out, H, W] (the flow velocity).
 */
export function buildMmditGraph(cfg: Sd3TransformerConfig, weights: WeightSource, opts: MmditGraphOptions = {}): BuiltGraph {
  const g = new GraphBuilder({ name: "sd3_transformer", weights });
  const hook = (v: Value, name: string) => {
    if (opts.hooks) g.output(v, `hook:${name}`);
  };
  const D = cfg.numHeads * cfg.headDim;
  const p = cfg.patchSize;
  const M = cfg.posEmbedMaxSize;
  const heads = cfg.numHeads;
  const headDim = cfg.headDim;
  const x = g.input("hidden_states", "float32", ["batch", cfg.inChannels, "height", "width"]);
  const t = g.input("timestep", "float32", ["batch"]);
  const ctxIn = g.input("encoder_hidden_states", "float32", ["batch", "sequence", cfg.jointAttentionDim]);
  const pooled = g.input("pooled_projections", "float32", ["batch", cfg.pooledProjectionDim]);

  // Patch embedding + the centre crop of the stored M x M positional grid.
  const xShape = shapeOf(g, x);
  const hw = g.op("Div", [slice(g, xShape, [2], [4], [0]), g.i64(p)]); // [2] = (h, w) in patches
  let hs = conv2d(g, x, "pos_embed.proj", { inChannels: cfg.inChannels, outChannels: D, kernel: p, stride: p }); // [B, D, h, w]
  hs = transpose(g, reshape(g, hs, [0, D, -1]), [0, 2, 1]); // [B, h*w, D] row-major over (h, w)
  const grid = reshape(g, g.weight("pos_embed.pos_embed", [1, M * M, D]), [M, M, D]);
  const topLeft = g.op("Div", [g.op("Sub", [g.i64([M, M]), hw]), g.i64(2)]); // [top, left]
  const pos = reshape(g, slice(g, grid, topLeft, g.op("Add", [topLeft, hw]), [0, 1]), [1, -1, D]); // [1, h*w, D]
  hs = g.op("Add", [hs, pos]);
  hook(hs, "pos_embed");

  // temb = TimestepEmbedding(sinusoid(t)) + PixArtAlphaTextProjection(pooled) (SiLU).
  const tEmb = timestepEmbedding(g, timestepSinusoid(g, t, 256, { flipSinToCos: true, freqShift: 0 }), "time_text_embed.timestep_embedder", 256, D);
  const pEmb = timestepEmbedding(g, pooled, "time_text_embed.text_embedder", cfg.pooledProjectionDim, D);
  const temb = g.op("Add", [tEmb, pEmb]); // [B, D]
  hook(temb, "time_text_embed");

  let ctx = linear(g, ctxIn, "context_embedder", cfg.jointAttentionDim, cfg.captionProjectionDim); // [B, S, D]
  hook(ctx, "context_embedder");

  const imgTokens = slice(g, shapeOf(g, hs), [1], [2], [0]); // [1] = h*w
  const dual = new Set(cfg.dualAttentionLayers);
  for (let i = 0; i < cfg.numLayers; i++) {
    const b = `transformer_blocks.${i}`;
    const last = i === cfg.numLayers - 1; // context_pre_only: the context stream ends here
    const isDual = dual.has(i);

    const n = adaChunks(g, temb, `${b}.norm1`, D, isDual ? 9 : 6);
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = n;
    const normed = plainLayerNorm(g, hs, D);
    const nh = modulate(g, normed, shiftMsa, scaleMsa); // [B, h*w, D]

    let nc: Value;
    let c: Value[] = [];
    if (last) {
      const [scale, shift] = adaChunks(g, temb, `${b}.norm1_context`, D, 2); // AdaLayerNormContinuous: scale first
      nc = modulate(g, plainLayerNorm(g, ctx, D), shift, scale);
    } else {
      c = adaChunks(g, temb, `${b}.norm1_context`, D, 6);
      nc = modulate(g, plainLayerNorm(g, ctx, D), c[0], c[1]);
    }

    // Joint attention: image tokens first, then context tokens.
    const a = `${b}.attn`;
    let q = linear(g, nh, `${a}.to_q`, D, D);
    let k = linear(g, nh, `${a}.to_k`, D, D);
    const v = linear(g, nh, `${a}.to_v`, D, D);
    let qc = linear(g, nc, `${a}.add_q_proj`, D, D);
    let kc = linear(g, nc, `${a}.add_k_proj`, D, D);
    const vc = linear(g, nc, `${a}.add_v_proj`, D, D);
    if (cfg.qkNorm) {
      q = headRmsNorm(g, q, `${a}.norm_q.weight`, heads, headDim);
      k = headRmsNorm(g, k, `${a}.norm_k.weight`, heads, headDim);
      qc = headRmsNorm(g, qc, `${a}.norm_added_q.weight`, heads, headDim);
      kc = headRmsNorm(g, kc, `${a}.norm_added_k.weight`, heads, headDim);
    }
    const joint = scaledDotProductAttention(g, concat(g, [q, qc], 1), concat(g, [k, kc], 1), concat(g, [v, vc], 1), { heads, headDim }); // [B, h*w+S, D]
    const imgOut = linear(g, slice(g, joint, g.i64([0]), imgTokens, [1]), `${a}.to_out.0`, D, D);
    hs = g.op("Add", [hs, gated(g, gateMsa, imgOut)]);

    if (isDual) {
      // SD35AdaLayerNormZeroX's second modulation feeds an image-only self-attention.
      const nh2 = modulate(g, normed, n[6], n[7]);
      const a2 = `${b}.attn2`;
      let q2 = linear(g, nh2, `${a2}.to_q`, D, D);
      let k2 = linear(g, nh2, `${a2}.to_k`, D, D);
      const v2 = linear(g, nh2, `${a2}.to_v`, D, D);
      if (cfg.qkNorm) {
        q2 = headRmsNorm(g, q2, `${a2}.norm_q.weight`, heads, headDim);
        k2 = headRmsNorm(g, k2, `${a2}.norm_k.weight`, heads, headDim);
      }
      const o2 = linear(g, scaledDotProductAttention(g, q2, k2, v2, { heads, headDim }), `${a2}.to_out.0`, D, D);
      hs = g.op("Add", [hs, gated(g, n[8], o2)]);
    }

    const ff = feedForward(g, modulate(g, plainLayerNorm(g, hs, D), shiftMlp, scaleMlp), `${b}.ff`, D);
    hs = g.op("Add", [hs, gated(g, gateMlp, ff)]);

    if (!last) {
      const ctxOut = linear(g, slice(g, joint, imgTokens, g.i64([Number.MAX_SAFE_INTEGER]), [1]), `${a}.to_add_out`, D, D);
      ctx = g.op("Add", [ctx, gated(g, c[2], ctxOut)]);
      const ffc = feedForward(g, modulate(g, plainLayerNorm(g, ctx, D), c[3], c[4]), `${b}.ff_context`, D);
      ctx = g.op("Add", [ctx, gated(g, c[5], ffc)]);
      hook(ctx, b);
    }
    hook(hs, `${b}.out1`);
  }

  const [scale, shift] = adaChunks(g, temb, "norm_out", D, 2);
  hs = modulate(g, plainLayerNorm(g, hs, D), shift, scale);
  hook(hs, "norm_out");
  hs = linear(g, hs, "proj_out", D, p * p * cfg.outChannels); // [B, h*w, p*p*C]
  hook(hs, "proj_out");

  // Unpatchify: [B, h, w, p, p, C] -> 'nhwpqc->nchpwq' -> [B, C, h*p, w*p].
  const batch = slice(g, xShape, [0], [1], [0]);
  const six = concat(g, [batch, hw, g.i64([p, p, cfg.outChannels])], 0);
  const y = transpose(g, g.op("Reshape", [hs, six]), [0, 5, 1, 3, 2, 4]);
  const out = g.op("Reshape", [y, concat(g, [batch, g.i64([cfg.outChannels]), slice(g, xShape, [2], [4], [0])], 0)]);
  g.output(out, "sample", "float32", ["batch", cfg.outChannels, "height", "width"]);
  return g.build();
}

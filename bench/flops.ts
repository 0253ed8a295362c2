/**
 * Analytic FLOP counts of one denoiser call, walked over the config in the same order as the graph builders.
 * One multiply-add counts as 2 FLOPs. Counted: every conv, every Linear and the two attention products
 * (Q K^T and P V). Not counted: norms, activations, softmax, residual adds, resizes, bias adds (a few percent
 * at most).
 */
import type { UnetConfig } from "../src/models/components/unet-config.ts";
import type { Sd3TransformerConfig } from "../src/models/sd3/config.ts";

export interface FlopCount {
  conv: number;
  linear: number;
  attention: number;
  total: number;
}

export interface UnetCallShape {
  batch: number;
  /** Latent height and width (image size / 8). */
  height: number;
  width: number;
  /** Text context tokens (77 for CLIP). */
  contextLength: number;
}

/**
 * UNet2DConditionModel, in the order of `buildUnetGraph` (src/models/components/unet.graph.ts): convs 3x3 and 1x1
 * (including conv proj_in/proj_out); Linears of the attention projections, GEGLU feed-forward, time and add
 * embeddings, linear proj_in/proj_out and resnet time projections.
 */
export function countUnetFlops(cfg: UnetConfig, s: UnetCallShape): FlopCount {
  const B = s.batch;
  const L = s.contextLength;
  const c = { conv: 0, linear: 0, attention: 0 };
  const conv = (h: number, w: number, cin: number, cout: number, k: number) => {
    c.conv += 2 * B * h * w * cin * cout * k * k;
  };
  const linear = (tokens: number, fin: number, fout: number) => {
    c.linear += 2 * B * tokens * fin * fout;
  };
  const E = cfg.timeEmbedDim;
  const ch = cfg.blockOutChannels;
  const n = ch.length;

  linear(1, ch[0], E);
  linear(1, E, E);
  if (cfg.textTime) {
    linear(1, cfg.textTime.projectionInputDim, E);
    linear(1, E, E);
  }

  const resnet = (h: number, w: number, cin: number, cout: number) => {
    conv(h, w, cin, cout, 3);
    linear(1, E, cout);
    conv(h, w, cout, cout, 3);
    if (cin !== cout) conv(h, w, cin, cout, 1);
  };
  const transformer = (h: number, w: number, C: number, layers: number, crossDim: number) => {
    const N = h * w;
    const proj = () => (cfg.useLinearProjection ? linear(N, C, C) : conv(h, w, C, C, 1));
    proj();
    for (let k = 0; k < layers; k++) {
      linear(N, C, C); // attn1 q, k, v, out
      linear(N, C, C);
      linear(N, C, C);
      linear(N, C, C);
      c.attention += 2 * 2 * B * N * N * C; // Q K^T and P V over all heads
      linear(N, C, C); // attn2 q
      linear(L, crossDim, C); // attn2 k, v from the text context
      linear(L, crossDim, C);
      linear(N, C, C); // attn2 out
      c.attention += 2 * 2 * B * N * L * C;
      linear(N, C, 8 * C); // GEGLU proj to 2 x 4C
      linear(N, 4 * C, C);
    }
    proj();
  };

  let h = s.height;
  let w = s.width;
  conv(h, w, cfg.inChannels, ch[0], 3);
  const skips: { c: number; h: number; w: number }[] = [{ c: ch[0], h, w }];
  for (let i = 0; i < n; i++) {
    let cin = i === 0 ? ch[0] : ch[i - 1];
    for (let j = 0; j < cfg.layersPerBlock[i]; j++) {
      resnet(h, w, cin, ch[i]);
      if (cfg.downBlockTypes[i] === "CrossAttnDownBlock2D") transformer(h, w, ch[i], cfg.transformerLayers[i], cfg.crossAttentionDim[i]);
      skips.push({ c: ch[i], h, w });
      cin = ch[i];
    }
    if (i < n - 1) {
      // 3x3 stride 2, padding 1: ceil(h / 2).
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      conv(h, w, ch[i], ch[i], 3);
      skips.push({ c: ch[i], h, w });
    }
  }
  if (cfg.midBlock) {
    resnet(h, w, ch[n - 1], ch[n - 1]);
    transformer(h, w, ch[n - 1], cfg.transformerLayers[n - 1], cfg.crossAttentionDim[n - 1]);
    resnet(h, w, ch[n - 1], ch[n - 1]);
  }
  const rev = [...ch].reverse();
  const revLayers = [...cfg.layersPerBlock].reverse();
  const revCross = [...cfg.crossAttentionDim].reverse();
  let prev = rev[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < revLayers[i] + 1; j++) {
      const skip = skips.pop()!;
      resnet(h, w, (j === 0 ? prev : rev[i]) + skip.c, rev[i]);
      if (cfg.upBlockTypes[i] === "CrossAttnUpBlock2D") transformer(h, w, rev[i], cfg.upTransformerLayers[i], revCross[i]);
    }
    if (i < n - 1) {
      // Upsample to the next skip's size, then a 3x3 conv there.
      const next = skips[skips.length - 1];
      h = next.h;
      w = next.w;
      conv(h, w, rev[i], rev[i], 3);
    }
    prev = rev[i];
  }
  conv(h, w, ch[0], cfg.outChannels, 3);
  return { ...c, total: c.conv + c.linear + c.attention };
}

export interface MmditCallShape {
  batch: number;
  /** Latent height and width (image size / 8), multiples of the patch size. */
  height: number;
  width: number;
  /** Text context tokens (SD3: 77 CLIP + 256 T5 = 333). */
  contextLength: number;
}

/**
 * SD3Transformer2DModel, in the order of `buildMmditGraph` (src/models/sd3/mmdit.graph.ts): the patch-embedding
 * conv (counted as conv); as linear, the timestep and pooled-text embedders, context_embedder, per block the AdaLN
 * modulations of both streams (one token per batch item), the image stream's q/k/v/out and feed-forward, the
 * context stream's add_q/k/v, to_add_out and ff_context (the last block is context_pre_only: its context norm has
 * 2 chunks and it has no to_add_out nor ff_context), SD3.5 dual-attention attn2, norm_out and proj_out; as
 * attention, Q K^T and P V of the joint attention over image + context tokens (every block computes all of them,
 * the last one included) and of attn2 over image tokens.
 */
export function countMmditFlops(cfg: Sd3TransformerConfig, s: MmditCallShape): FlopCount {
  const B = s.batch;
  const L = s.contextLength;
  const p = cfg.patchSize;
  const D = cfg.numHeads * cfg.headDim;
  const N = (s.height / p) * (s.width / p); // image tokens
  const T = N + L; // joint sequence
  const c = { conv: 0, linear: 0, attention: 0 };
  const linear = (tokens: number, fin: number, fout: number) => {
    c.linear += 2 * B * tokens * fin * fout;
  };
  /** Q K^T and P V over all heads: [Lq, Dh] x [Dh, Lk] and [Lq, Lk] x [Lk, Dh] per head. */
  const attention = (lq: number, lk: number) => {
    c.attention += 2 * 2 * B * lq * lk * D;
  };
  const feedForward = (tokens: number) => {
    linear(tokens, D, 4 * D);
    linear(tokens, 4 * D, D);
  };

  c.conv += 2 * B * N * cfg.inChannels * p * p * D; // pos_embed.proj, kernel = stride = p
  linear(1, 256, D); // time_text_embed.timestep_embedder
  linear(1, D, D);
  linear(1, cfg.pooledProjectionDim, D); // time_text_embed.text_embedder
  linear(1, D, D);
  linear(L, cfg.jointAttentionDim, cfg.captionProjectionDim); // context_embedder

  const dual = new Set(cfg.dualAttentionLayers);
  for (let i = 0; i < cfg.numLayers; i++) {
    const last = i === cfg.numLayers - 1;
    linear(1, D, (dual.has(i) ? 9 : 6) * D); // norm1.linear
    linear(1, D, (last ? 2 : 6) * D); // norm1_context.linear
    for (let k = 0; k < 3; k++) linear(N, D, D); // to_q, to_k, to_v
    for (let k = 0; k < 3; k++) linear(L, D, D); // add_q_proj, add_k_proj, add_v_proj
    attention(T, T);
    linear(N, D, D); // to_out.0
    if (dual.has(i)) {
      for (let k = 0; k < 4; k++) linear(N, D, D); // attn2 to_q, to_k, to_v, to_out.0
      attention(N, N);
    }
    feedForward(N); // ff
    if (!last) {
      linear(L, D, D); // to_add_out
      feedForward(L); // ff_context
    }
  }
  linear(1, D, 2 * D); // norm_out.linear
  linear(N, D, p * p * cfg.outChannels); // proj_out
  return { ...c, total: c.conv + c.linear + c.attention };
}

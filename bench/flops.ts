/**
 * Analytic FLOP count of one UNet2DConditionModel call, walked over the config in the same order as
 * `buildUnetGraph` (src/models/_shared/unet.graph.ts). One multiply-add counts as 2 FLOPs. Counted: every conv
 * (3x3 and 1x1, including conv proj_in/proj_out), every Linear (attention projections, GEGLU feed-forward, time
 * and add embeddings, linear proj_in/proj_out, resnet time projections), and the two attention products
 * (Q K^T and P V). Not counted: norms, activations, softmax, residual adds, resizes (a few percent at most).
 */
import type { UnetConfig } from "../src/models/_shared/unet-config.ts";

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

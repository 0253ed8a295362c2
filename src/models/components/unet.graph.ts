/**
 * UNet2DConditionModel (diffusers `unets/unet_2d_condition.py`, `unet_2d_blocks.py`) as an ONNX graph, driven by
 * its config: SD1.x/SD2.x layouts and SDXL's `text_time` micro-conditioning. Dynamic batch, height and width;
 * upsampling follows the skip connection's size, so latent sizes not divisible by 2^levels work like diffusers.
 */
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { conv2d, groupNorm, silu } from "../../graph/ops/nn.ts";
import { reshape } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";
import { downsample2D, resnetBlock2D, timestepEmbedding, timestepSinusoid, transformer2D, upsample2D } from "./blocks.ts";
import type { UnetConfig } from "./unet-config.ts";

export interface UnetGraphOptions {
  /**
   * Also output the top-level module outputs as `hook:<module>` (conv_in, time_embedding, add_embedding,
   * down_blocks.i, mid_block, up_blocks.i, conv_out), to localise a mismatch against diffusers.
   */
  hooks?: boolean;
}

/**
 * Inputs: `sample` f32[B, Cin, h, w], `timestep` f32[B], `encoder_hidden_states` f32[B, L, D]
 * (+ `text_embeds` f32[B, P - 6*addDim], `time_ids` f32[B, 6] for text_time). Output: `out_sample` f32[B, Cout, h, w].
 */
export function buildUnetGraph(cfg: UnetConfig, weights: WeightSource, opts: UnetGraphOptions = {}): BuiltGraph {
  const g = new GraphBuilder({ name: "unet", weights });
  const hook = (v: Value, name: string) => {
    if (opts.hooks) g.output(v, `hook:${name}`);
  };
  const ch = cfg.blockOutChannels;
  const n = ch.length;
  const C0 = ch[0];
  const E = cfg.timeEmbedDim;
  const groups = cfg.normGroups;
  const eps = cfg.normEps;
  const ctxDimIn = cfg.crossAttentionDim[0];

  const sample = g.input("sample", "float32", ["batch", cfg.inChannels, "height", "width"]);
  const timestep = g.input("timestep", "float32", ["batch"]);
  const ctx = g.input("encoder_hidden_states", "float32", ["batch", "sequence", ctxDimIn]);

  // Time embedding: sinusoid(C0) -> time_embedding -> [B, E] (+ SDXL add_embedding).
  const tProj = timestepSinusoid(g, timestep, C0, { flipSinToCos: cfg.flipSinToCos, freqShift: cfg.freqShift }); // [B, C0]
  let emb = timestepEmbedding(g, tProj, "time_embedding", C0, E); // [B, E]
  hook(emb, "time_embedding");
  if (cfg.textTime) {
    const { timeEmbedDim: A, projectionInputDim: P } = cfg.textTime;
    const textEmbeds = g.input("text_embeds", "float32", ["batch", P - 6 * A]);
    const timeIds = g.input("time_ids", "float32", ["batch", 6]);
    const idsEmb = timestepSinusoid(g, reshape(g, timeIds, [-1]), A, { flipSinToCos: cfg.flipSinToCos, freqShift: cfg.freqShift }); // [6B, A]
    const addIn = g.op("Concat", [textEmbeds, reshape(g, idsEmb, [-1, 6 * A])], { axis: 1 }); // [B, P]
    const aug = timestepEmbedding(g, addIn, "add_embedding", P, E);
    hook(aug, "add_embedding");
    emb = g.op("Add", [emb, aug]);
  }

  let x = conv2d(g, sample, "conv_in", { inChannels: cfg.inChannels, outChannels: C0, kernel: 3, padding: 1 }); // [B, C0, h, w]
  hook(x, "conv_in");
  const skips: { v: Value; c: number }[] = [{ v: x, c: C0 }];

  const resnet = (v: Value, prefix: string, cin: number, cout: number) =>
    resnetBlock2D(g, v, emb, prefix, { inChannels: cin, outChannels: cout, tembChannels: E, groups, eps });
  const attn = (v: Value, prefix: string, c: number, heads: number, layers: number, crossDim: number) =>
    transformer2D(g, v, ctx, prefix, { channels: c, heads, layers, crossDim, groups, useLinearProjection: cfg.useLinearProjection });

  for (let i = 0; i < n; i++) {
    const cross = cfg.downBlockTypes[i] === "CrossAttnDownBlock2D";
    let cin = i === 0 ? C0 : ch[i - 1];
    for (let j = 0; j < cfg.layersPerBlock[i]; j++) {
      x = resnet(x, `down_blocks.${i}.resnets.${j}`, cin, ch[i]);
      if (cross) x = attn(x, `down_blocks.${i}.attentions.${j}`, ch[i], cfg.heads[i], cfg.transformerLayers[i], cfg.crossAttentionDim[i]);
      skips.push({ v: x, c: ch[i] });
      cin = ch[i];
    }
    if (i < n - 1) {
      x = downsample2D(g, x, `down_blocks.${i}.downsamplers.0`, ch[i], cfg.downsamplePadding);
      skips.push({ v: x, c: ch[i] });
    }
    hook(x, `down_blocks.${i}`);
  }

  const cMid = ch[n - 1];
  if (cfg.midBlock) {
    x = resnet(x, "mid_block.resnets.0", cMid, cMid);
    x = attn(x, "mid_block.attentions.0", cMid, cfg.heads[n - 1], cfg.transformerLayers[n - 1], cfg.crossAttentionDim[n - 1]);
    x = resnet(x, "mid_block.resnets.1", cMid, cMid);
    hook(x, "mid_block");
  }

  const rev = [...ch].reverse();
  const revHeads = [...cfg.heads].reverse();
  const revLayers = [...cfg.layersPerBlock].reverse();
  const revCross = [...cfg.crossAttentionDim].reverse();
  let prevOut = rev[0];
  for (let i = 0; i < n; i++) {
    const out = rev[i];
    const cross = cfg.upBlockTypes[i] === "CrossAttnUpBlock2D";
    const count = revLayers[i] + 1;
    for (let j = 0; j < count; j++) {
      const skip = skips.pop();
      if (!skip) throw new Error("unreachable: skip stack underflow");
      const cin = (j === 0 ? prevOut : out) + skip.c;
      x = g.op("Concat", [x, skip.v], { axis: 1 }); // [B, cin, h, w]
      x = resnet(x, `up_blocks.${i}.resnets.${j}`, cin, out);
      if (cross) x = attn(x, `up_blocks.${i}.attentions.${j}`, out, revHeads[i], cfg.upTransformerLayers[i], revCross[i]);
    }
    if (i < n - 1) x = upsample2D(g, x, `up_blocks.${i}.upsamplers.0`, out, skips[skips.length - 1].v);
    hook(x, `up_blocks.${i}`);
    prevOut = out;
  }

  x = silu(g, groupNorm(g, x, "conv_norm_out", { channels: C0, groups, eps }));
  x = conv2d(g, x, "conv_out", { inChannels: C0, outChannels: cfg.outChannels, kernel: 3, padding: 1 });
  hook(x, "conv_out");
  g.output(x, "out_sample", "float32", ["batch", cfg.outChannels, "height", "width"]);
  return g.build();
}

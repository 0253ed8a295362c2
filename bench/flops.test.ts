import assert from "node:assert/strict";
import { test } from "node:test";
import { createRecordingWeights } from "../src/graph/weights.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { sd3TransformerConfigFromJson } from "../src/models/sd3/config.ts";
import { buildMmditGraph } from "../src/models/sd3/mmdit.graph.ts";
import { SD3_MEDIUM_TRANSFORMER } from "./configs.ts";
import { countMmditFlops, countUnetFlops } from "./flops.ts";

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test("countUnetFlops: a two-level UNet counted by hand", () => {
  // C0 = 4, levels [4, 8], 1 resnet per down level (2 per up level), attention at down 0 / up 1 with 2 heads,
  // conv proj_in/proj_out, no mid block, time embedding 16; latent 4x4, batch 1, 3 context tokens of width 6.
  const cfg = {
    ...unetConfigFromJson({
      block_out_channels: [4, 8],
      down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 1,
      attention_head_dim: 2,
      cross_attention_dim: 6,
      norm_num_groups: 2,
    }),
    midBlock: false,
  };
  const got = countUnetFlops(cfg, { batch: 1, height: 4, width: 4, contextLength: 3 });

  // One 3x3 conv, k output pixels: 2 * pixels * cin * cout * 9.
  const conv3 = (px: number, cin: number, cout: number) => 2 * px * cin * cout * 9;
  // Transformer at 4x4 (N = 16 tokens), C = 4:
  const attnConv = 2 * (2 * 16 * 4 * 4); // proj_in + proj_out as 1x1 convs: 512 each
  const attnLinear = sum([
    4 * (2 * 16 * 4 * 4), // attn1 q, k, v, out: 512 each
    2 * 16 * 4 * 4, // attn2 q
    2 * (2 * 3 * 6 * 4), // attn2 k, v from 3 tokens of width 6
    2 * 16 * 4 * 4, // attn2 out
    2 * 16 * 4 * 32, // GEGLU proj 4 -> 32
    2 * 16 * 16 * 4, // ff out 16 -> 4
  ]); // 9504
  const attnProducts = 2 * (2 * 16 * 16 * 4) + 2 * (2 * 16 * 3 * 4); // self QK^T, PV; cross QK^T, PV = 4864
  assert.equal(attnLinear, 9504);
  assert.equal(attnProducts, 4864);

  const conv = sum([
    conv3(16, 4, 4), // conv_in
    conv3(16, 4, 4) + conv3(16, 4, 4), // down0 resnet 4->4 at 4x4
    attnConv, // down0 attention
    conv3(4, 4, 4), // down0 downsampler, output 2x2
    conv3(4, 4, 8) + conv3(4, 8, 8) + 2 * 4 * 4 * 8, // down1 resnet 4->8 at 2x2 (+ 1x1 shortcut)
    conv3(4, 16, 8) + conv3(4, 8, 8) + 2 * 4 * 16 * 8, // up0 resnet 0: cat(8, skip 8) -> 8
    conv3(4, 12, 8) + conv3(4, 8, 8) + 2 * 4 * 12 * 8, // up0 resnet 1: cat(8, skip 4 from the downsampler) -> 8
    conv3(16, 8, 8), // up0 upsampler conv at 4x4
    conv3(16, 12, 4) + conv3(16, 4, 4) + 2 * 16 * 12 * 4 + attnConv, // up1 resnet 0: cat(8, 4) -> 4, attention
    conv3(16, 8, 4) + conv3(16, 4, 4) + 2 * 16 * 8 * 4 + attnConv, // up1 resnet 1: cat(4, 4 from conv_in) -> 4, attention
    conv3(16, 4, 4), // conv_out
  ]);
  const linear = sum([
    2 * 4 * 16 + 2 * 16 * 16, // time_embedding linear_1 (4 -> 16), linear_2 (16 -> 16)
    2 * 16 * 4, // down0 resnet time_emb_proj 16 -> 4
    2 * 16 * 8, // down1 resnet
    2 * 16 * 8 * 2, // up0 resnets
    2 * 16 * 4 * 2, // up1 resnets
    3 * attnLinear, // three transformers
  ]);
  const attention = 3 * attnProducts;
  assert.deepEqual(got, { conv, linear, attention, total: conv + linear + attention });
  assert.equal(got.total, 155104);
});

test("countUnetFlops: batch and the SDXL add-embedding scale as expected", () => {
  const base = {
    block_out_channels: [4, 8],
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim: 2,
    cross_attention_dim: 6,
    norm_num_groups: 2,
    use_linear_projection: true,
  };
  const shape = { batch: 1, height: 6, width: 6, contextLength: 5 };
  const one = countUnetFlops(unetConfigFromJson(base), shape);
  const two = countUnetFlops(unetConfigFromJson(base), { ...shape, batch: 2 });
  assert.deepEqual(two, { conv: 2 * one.conv, linear: 2 * one.linear, attention: 2 * one.attention, total: 2 * one.total });
  const xl = countUnetFlops(
    unetConfigFromJson({ ...base, addition_embed_type: "text_time", addition_time_embed_dim: 2, projection_class_embeddings_input_dim: 20 }),
    shape,
  );
  // add_embedding: linear_1 20 -> 16, linear_2 16 -> 16 (time embedding dim = 4 * C0).
  assert.equal(xl.linear - one.linear, 2 * 20 * 16 + 2 * 16 * 16);
  assert.equal(xl.conv, one.conv);
});

/** A two-block MMDiT: D = 2 heads x 2 = 4, patch 2, 4 -> 4 channels, context width 6, pooled width 5. */
const TINY_MMDIT = {
  patch_size: 2,
  in_channels: 4,
  out_channels: 4,
  num_layers: 2,
  num_attention_heads: 2,
  attention_head_dim: 2,
  joint_attention_dim: 6,
  caption_projection_dim: 4,
  pooled_projection_dim: 5,
  pos_embed_max_size: 8,
  sample_size: 4,
};

test("countMmditFlops: a two-block MMDiT counted by hand", () => {
  // Latent 4x4 -> N = 4 image tokens (2x2 patches), L = 3 context tokens, T = 7 joint tokens, batch 1.
  const got = countMmditFlops(sd3TransformerConfigFromJson(TINY_MMDIT), { batch: 1, height: 4, width: 4, contextLength: 3 });
  const conv = 2 * 4 * (4 * 2 * 2) * 4; // patch conv: 4 patches x (4 ch x 2 x 2) x 4 outputs = 512
  const embeddings = sum([
    2 * 256 * 4 + 2 * 4 * 4, // timestep_embedder 256 -> 4 -> 4: 2080
    2 * 5 * 4 + 2 * 4 * 4, // text_embedder 5 -> 4 -> 4: 72
    2 * 3 * 6 * 4, // context_embedder, 3 tokens 6 -> 4: 144
  ]);
  const block0 = sum([
    2 * 4 * 24, // norm1.linear 4 -> 6 x 4 on one token: 192
    2 * 4 * 24, // norm1_context.linear: 192
    3 * (2 * 4 * 4 * 4), // to_q, to_k, to_v on 4 tokens: 384
    3 * (2 * 3 * 4 * 4), // add_q/k/v_proj on 3 tokens: 288
    2 * 4 * 4 * 4, // to_out.0: 128
    2 * 3 * 4 * 4, // to_add_out: 96
    2 * 4 * 4 * 16 + 2 * 4 * 16 * 4, // ff 4 -> 16 -> 4 on 4 tokens: 1024
    2 * 3 * 4 * 16 + 2 * 3 * 16 * 4, // ff_context on 3 tokens: 768
  ]);
  const block1 = sum([
    2 * 4 * 24, // norm1.linear: 192
    2 * 4 * 8, // norm1_context (AdaLayerNormContinuous, 2 chunks): 64
    3 * (2 * 4 * 4 * 4), // 384
    3 * (2 * 3 * 4 * 4), // 288
    2 * 4 * 4 * 4, // to_out.0: 128
    2 * 4 * 4 * 16 + 2 * 4 * 16 * 4, // ff: 1024 (no to_add_out, no ff_context)
  ]);
  const final = 2 * 4 * 8 + 2 * 4 * 4 * 16; // norm_out 4 -> 8 on one token, proj_out 4 -> 2*2*4 on 4 tokens: 576
  assert.equal(block0, 3072);
  assert.equal(block1, 2080);
  const linear = embeddings + block0 + block1 + final;
  const attention = 2 * (2 * (7 * 7 * 4) * 2); // per block: Q K^T and P V, 7 x 7 scores x head dims 2 x 2 heads = 784
  assert.deepEqual(got, { conv, linear, attention, total: conv + linear + attention });
  assert.equal(got.total, 10104);
});

test("countMmditFlops: batch scales everything; a dual-attention block adds attn2 and 3 modulation chunks", () => {
  const cfg = sd3TransformerConfigFromJson(TINY_MMDIT);
  const shape = { batch: 1, height: 4, width: 4, contextLength: 3 };
  const one = countMmditFlops(cfg, shape);
  const two = countMmditFlops(cfg, { ...shape, batch: 2 });
  assert.deepEqual(two, { conv: 2 * one.conv, linear: 2 * one.linear, attention: 2 * one.attention, total: 2 * one.total });
  const dual = countMmditFlops(sd3TransformerConfigFromJson({ ...TINY_MMDIT, dual_attention_layers: [0] }), shape);
  // norm1.linear 4 -> 36 instead of 4 -> 24 (+96); attn2 q, k, v, out on 4 tokens (+512); 4 x 4 self-attention (+256).
  assert.equal(dual.linear - one.linear, 96 + 512);
  assert.equal(dual.attention - one.attention, 2 * (2 * 4 * 4 * 4));
  assert.equal(dual.conv, one.conv);
});

test("countMmditFlops: SD3 medium's linears match every weight matrix the graph builder reads", () => {
  // Independent of the walk above: each 2-D weight [out, in] is used on a known number of tokens per batch item,
  // told by its name; the patch conv [D, C, p, p] on each patch.
  const cfg = sd3TransformerConfigFromJson(SD3_MEDIUM_TRANSFORMER.config);
  const rec = createRecordingWeights();
  buildMmditGraph(cfg, rec.source);
  const shape = { batch: 1, height: 64, width: 48, contextLength: 333 };
  const N = (64 / 2) * (48 / 2);
  const tokensOf = (name: string) => {
    if (/(^|\.)(norm1|norm1_context|norm_out)\.linear\.weight$|^time_text_embed\./.test(name)) return 1;
    if (/^context_embedder\.|\.attn\.(add_[qkv]_proj|to_add_out)\.|\.ff_context\./.test(name)) return shape.contextLength;
    return N;
  };
  let linear = 0;
  let conv = 0;
  let params = 0;
  for (const w of rec.recorded()) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (w.name !== "pos_embed.pos_embed") params += n; // a buffer, not a parameter
    if (w.name === "pos_embed.proj.weight") conv += 2 * N * n;
    else if (w.shape.length === 2) linear += 2 * tokensOf(w.name) * n;
  }
  const got = countMmditFlops(cfg, shape);
  assert.equal(got.linear, linear);
  assert.equal(got.conv, conv);
  // The published SD3 medium transformer's parameter count (diffusers' num_parameters()): nothing was left out.
  assert.equal(params, 2_028_328_000);
  // 24 blocks of joint attention over 768 + 333 tokens, width 1536.
  assert.equal(got.attention, 24 * 2 * 2 * (768 + 333) ** 2 * 1536);
});

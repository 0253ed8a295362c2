import assert from "node:assert/strict";
import { test } from "node:test";
import { unetConfigFromJson } from "../src/models/_shared/unet-config.ts";
import { countUnetFlops } from "./flops.ts";

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

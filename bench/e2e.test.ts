import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadCheckpoint } from "../src/checkpoint/checkpoint.ts";
import { createRecordingWeights, type WeightSource } from "../src/graph/weights.ts";
import { buildClipTextGraph, clipTextConfigFromJson } from "../src/models/components/clip-text.graph.ts";
import { buildT5EncoderGraph, t5EncoderConfigFromJson } from "../src/models/components/t5-encoder.graph.ts";
import { buildUnetGraph } from "../src/models/components/unet.graph.ts";
import { unetConfigFromJson } from "../src/models/components/unet-config.ts";
import { MAX_T5_SEQUENCE_LENGTH, sd3TransformerConfigFromJson } from "../src/models/sd3/config.ts";
import { planSd3Memory, sd3MemoryInput } from "../src/models/sd3/memory.ts";
import { buildMmditGraph } from "../src/models/sd3/mmdit.graph.ts";
import { clipTextConfigJson, tinyClipVocab, tinyT5Vocab } from "../src/models/testing/tiny-checkpoint.ts";
import { E2E_MODELS, type E2eSd3Model } from "./configs.ts";
import { e2eEstimateBytes, writeE2eCheckpoint } from "./e2e.ts";

const GiB = 1024 ** 3;

const params = (record: (s: WeightSource) => void) => {
  const rec = createRecordingWeights({ dtype: "F16" });
  record(rec.source);
  return rec.recorded().reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
};

test("the end-to-end configs build the published models: their parameter counts", () => {
  // stabilityai/sd-turbo (SD 2.1 UNet, OpenCLIP ViT-H/14 text tower) and SDXL's UNet, CLIP ViT-L and OpenCLIP bigG.
  const expected = {
    "sd-turbo": { unet: 865_910_724, text: [340_387_840] },
    "sdxl-turbo": { unet: 2_567_463_684, text: [123_060_480, 694_659_840] },
    sdxl: { unet: 2_567_463_684, text: [123_060_480, 694_659_840] },
  };
  for (const [id, m] of Object.entries(E2E_MODELS)) {
    if (m.family === "sd3") continue;
    const e = expected[id as keyof typeof expected];
    assert.equal(params((s) => buildUnetGraph(unetConfigFromJson(m.unet), s)), e.unet, `${id} unet`);
    assert.deepEqual(
      m.textEncoders.map(([, cfg]) => params((s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s))),
      e.text,
      `${id} text encoders`,
    );
  }
});

test("the SD3 row builds stabilityai/stable-diffusion-3-medium-diffusers: its parameter counts", () => {
  const m = E2E_MODELS.sd3;
  // The transformer's parameters as diffusers counts them (num_parameters()); pos_embed.pos_embed, the stored grid of
  // positions (pos_embed_max_size² x 1536), is a persistent buffer: in the checkpoint and loaded, not a parameter.
  const rec = createRecordingWeights({ dtype: "F16" });
  buildMmditGraph(sd3TransformerConfigFromJson(m.transformer), rec.source);
  let transformer = 0;
  let buffer = 0;
  for (const w of rec.recorded()) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (w.name === "pos_embed.pos_embed") buffer += n;
    else transformer += n;
  }
  assert.equal(transformer, 2_028_328_000);
  assert.equal(buffer, 192 * 192 * 1536);
  // CLIP-L with its text projection (768 x 768; SDXL's CLIP-L has none), OpenCLIP bigG as SDXL's.
  assert.deepEqual(
    m.textEncoders.map(([, cfg]) => params((s) => buildClipTextGraph(clipTextConfigFromJson(cfg), s))),
    [123_650_304, 694_659_840],
  );
  // T5 v1.1 XXL's encoder: the shared embedding, 24 blocks, block 0's relative attention bias, the final norm.
  assert.equal(params((s) => buildT5EncoderGraph(t5EncoderConfigFromJson(m.t5), s)), 4_762_310_656);
});

test("memory estimates: SD-Turbo fits the default 13 GiB limit, SDXL-Turbo, SDXL and SD3 at 1024² with guidance do not", () => {
  assert.ok(e2eEstimateBytes(E2E_MODELS["sd-turbo"]) < 13 * GiB);
  assert.ok(e2eEstimateBytes(E2E_MODELS["sdxl-turbo"]) > 13 * GiB);
  assert.ok(e2eEstimateBytes(E2E_MODELS.sdxl) > e2eEstimateBytes(E2E_MODELS["sdxl-turbo"]), "guidance batch 2 at 1024²");
  const sd3 = e2eEstimateBytes(E2E_MODELS.sd3);
  assert.ok(sd3 > 13 * GiB, `SD3 ${(sd3 / GiB).toFixed(2)} GiB`);
  // int8 T5 reaches the estimate: T5-XXL's linears (4.63 B weights) at 1 byte instead of 4, less their row scales.
  const fp32T5 = e2eEstimateBytes({ ...E2E_MODELS.sd3, t5Quantization: "none" });
  assert.ok(fp32T5 - sd3 > 12.8 * GiB && fp32T5 - sd3 < 13 * GiB, `fp32 T5 ${(fp32T5 / GiB).toFixed(2)} GiB`);
});

test("an SD3 row's checkpoint loads as SD3, and its estimate is the engine's memory plan on the written files", () => {
  // SD3 medium's layout at tiny widths (a few MB): CLIP 8 + 16 zero-padded to the joint width 32 = T5's d_model.
  const clipVocab = Object.keys(tinyClipVocab().vocab).length;
  const tiny: E2eSd3Model = {
    ...E2E_MODELS.sd3,
    textEncoders: [
      ["text_encoder", clipTextConfigJson({ hidden: 8, heads: 2, layers: 2, act: "quick_gelu", projection: 8, withProjection: true, vocabSize: clipVocab })],
      ["text_encoder_2", clipTextConfigJson({ hidden: 16, heads: 2, layers: 2, act: "gelu", projection: 16, withProjection: true, vocabSize: clipVocab })],
    ],
    t5: { ...E2E_MODELS.sd3.t5, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 2, num_decoder_layers: 2, num_heads: 4, vocab_size: tinyT5Vocab().length },
    transformer: {
      ...E2E_MODELS.sd3.transformer,
      attention_head_dim: 8,
      caption_projection_dim: 16,
      joint_attention_dim: 32,
      num_attention_heads: 2,
      num_layers: 2,
      pooled_projection_dim: 24,
      pos_embed_max_size: 16,
      sample_size: 16,
    },
    vae: { ...E2E_MODELS.sd3.vae, block_out_channels: [8, 8, 16, 16], layers_per_block: 1, norm_num_groups: 4 },
    size: 128,
  };
  const dir = mkdtempSync(join(tmpdir(), "easel-e2e-sd3-"));
  try {
    writeE2eCheckpoint(tiny, dir);
    const ckpt = loadCheckpoint(dir);
    assert.equal(ckpt.pipelineClass, "StableDiffusion3Pipeline");
    assert.equal(ckpt.schedulerClass, "FlowMatchEulerDiscreteScheduler");
    assert.deepEqual(ckpt.schedulerConfig.shift, 3);
    assert.equal(ckpt.components.text_encoder_3?.config.d_model, 32);
    assert.equal(ckpt.components.transformer?.config.num_layers, 2);
    assert.equal(ckpt.components.vae?.config.latent_channels, 16);
    const unlimited = { totalBytes: Number.MAX_SAFE_INTEGER, freeBytes: Number.MAX_SAFE_INTEGER };
    const plan = planSd3Memory(sd3MemoryInput(ckpt, unlimited, { t5Quantization: "int8", size: { width: 128, height: 128 }, maxT5Tokens: MAX_T5_SEQUENCE_LENGTH }));
    assert.deepEqual(plan.modes, { clip: "resident", t5: "resident", transformer: "resident", vae: "resident" });
    assert.equal(plan.t5, "int8");
    assert.equal(e2eEstimateBytes(tiny), plan.peakBytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Checkpoint } from "../pipeline/family.ts";
import { sd3Defaults, sd3TransformerConfigFromJson, sd3Variant } from "./config.ts";
import { sd3Family } from "./index.ts";

// Published transformer configs (MODELS.md §1.7-1.8), reduced to the keys that tell the releases apart.
const SD3_MEDIUM = { sample_size: 128, num_layers: 24, num_attention_heads: 24, attention_head_dim: 64, caption_projection_dim: 1536, pos_embed_max_size: 192, qk_norm: null, dual_attention_layers: [] };
const SD35_LARGE = { ...SD3_MEDIUM, num_layers: 38, num_attention_heads: 38, caption_projection_dim: 2432, qk_norm: "rms_norm" };
const SD35_MEDIUM = { ...SD3_MEDIUM, pos_embed_max_size: 384, qk_norm: "rms_norm", dual_attention_layers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] };

const ckpt = (dir: string, transformer: Record<string, unknown>): Checkpoint =>
  ({
    dir,
    pipelineClass: "StableDiffusion3Pipeline",
    modelIndex: {},
    components: { transformer: { dir: `${dir}/transformer`, config: transformer, weights: new Map() } },
    tokenizers: {},
    schedulerClass: "FlowMatchEulerDiscreteScheduler",
    schedulerConfig: {},
  }) as unknown as Checkpoint;

test("releases, aliases and model-card defaults", () => {
  const cases: [Checkpoint, string, string[], number, number][] = [
    [ckpt("/m/stable-diffusion-3-medium-diffusers", SD3_MEDIUM), "sd3-medium", ["sd3"], 28, 7],
    [ckpt("/m/stable-diffusion-3.5-large", SD35_LARGE), "sd3.5-large", ["sd3_5", "sd3.5"], 28, 3.5],
    [ckpt("/m/stable-diffusion-3.5-large-turbo", SD35_LARGE), "sd3.5-large-turbo", ["sd3_5", "sd3.5"], 4, 0],
    [ckpt("/m/stable-diffusion-3.5-medium", SD35_MEDIUM), "sd3.5-medium", ["sd3_5", "sd3.5"], 40, 4.5],
  ];
  for (const [c, variant, aliases, steps, guidance] of cases) {
    assert.equal(sd3Variant(c), variant);
    assert.deepEqual(sd3Family.aliases(c), aliases);
    const d = sd3Defaults(c);
    assert.deepEqual([d.width, d.height, d.steps, d.guidanceScale], [1024, 1024, steps, guidance]);
    const l = sd3Family.limits(c);
    // Multiples of 16 (VAE 8 x patch 2) up to the stored positions' grid; no T5 in these checkpoints.
    const maxPatches = (c.components.transformer?.config.pos_embed_max_size as number) * 2 * 8;
    assert.deepEqual([l.sizeMultiple, l.maxSize, l.maxSequenceLength, l.prompt3, l.maxClipSkip], [16, maxPatches, 0, false, 0]);
  }
});

test("transformer config: published configs parse; inconsistent ones are rejected by key", () => {
  assert.equal(sd3TransformerConfigFromJson(SD35_MEDIUM).dualAttentionLayers.length, 13);
  assert.throws(() => sd3TransformerConfigFromJson({ ...SD3_MEDIUM, caption_projection_dim: 1000 }), /caption_projection_dim/);
  assert.throws(() => sd3TransformerConfigFromJson({ ...SD3_MEDIUM, qk_norm: "layer_norm" }), /qk_norm "layer_norm" is not supported/);
  assert.throws(() => sd3TransformerConfigFromJson({ ...SD3_MEDIUM, dual_attention_layers: [24] }), /dual_attention_layers/);
  assert.throws(() => sd3TransformerConfigFromJson({ ...SD3_MEDIUM, pos_embed_max_size: null }), /pos_embed_max_size/);
});

/** Which files of a pipeline repository a pull takes: one precision per component, shards with their index, no pickles. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { throwsEasel } from "../../test/helpers/errors.ts";
import { type HubFile, selectPipelineFiles } from "./select-files.ts";

const f = (path: string): HubFile => ({ path, size: 1, oid: "0".repeat(40) });
const INDEX = {
  _class_name: "StableDiffusion3Pipeline",
  scheduler: ["diffusers", "FlowMatchEulerDiscreteScheduler"],
  text_encoder_3: ["transformers", "T5EncoderModel"],
  tokenizer_3: ["transformers", "T5TokenizerFast"],
  transformer: ["diffusers", "SD3Transformer2DModel"],
  image_encoder: [null, null],
};
const TREE = [
  "model_index.json",
  "README.md",
  "sd3_medium.safetensors",
  "scheduler/scheduler_config.json",
  "text_encoder_3/config.json",
  "text_encoder_3/model.safetensors.index.json",
  "text_encoder_3/model-00001-of-00002.safetensors",
  "text_encoder_3/model-00002-of-00002.safetensors",
  "text_encoder_3/model.safetensors.index.fp16.json",
  "text_encoder_3/model.fp16-00001-of-00002.safetensors",
  "text_encoder_3/model.fp16-00002-of-00002.safetensors",
  "text_encoder_3/pytorch_model.bin",
  "tokenizer_3/spiece.model",
  "tokenizer_3/tokenizer.json",
  "tokenizer_3/special_tokens_map.json",
  "transformer/config.json",
  "transformer/diffusion_pytorch_model.safetensors",
  "transformer/diffusion_pytorch_model.fp16.safetensors",
  "transformer/diffusion_pytorch_model.onnx",
  "image_encoder/config.json",
].map(f);

const paths = (v?: "fp16") => selectPipelineFiles(TREE, INDEX, v).map((x) => x.path);

test("plain precision: sharded T5 with its index, one transformer file, tokenizer files; nothing else", () => {
  assert.deepEqual(paths(), [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder_3/config.json",
    "text_encoder_3/model.safetensors.index.json",
    "text_encoder_3/model-00001-of-00002.safetensors",
    "text_encoder_3/model-00002-of-00002.safetensors",
    "tokenizer_3/special_tokens_map.json",
    "tokenizer_3/spiece.model",
    "tokenizer_3/tokenizer.json",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
  ]);
});

test("fp16: the fp16 shards and file where they exist", () => {
  const p = paths("fp16");
  assert.ok(p.includes("text_encoder_3/model.safetensors.index.fp16.json"));
  assert.ok(p.includes("text_encoder_3/model.fp16-00002-of-00002.safetensors"));
  assert.ok(p.includes("transformer/diffusion_pytorch_model.fp16.safetensors"));
  assert.ok(!p.some((x) => x === "transformer/diffusion_pytorch_model.safetensors" || x.includes("model-00001")));
});

test("a component with only fp16 weights gets them without --variant; a named folder that is missing is an error", () => {
  const tree = TREE.filter((x) => x.path !== "transformer/diffusion_pytorch_model.safetensors");
  assert.ok(selectPipelineFiles(tree, INDEX).some((x) => x.path === "transformer/diffusion_pytorch_model.fp16.safetensors"));
  throwsEasel(() => selectPipelineFiles(TREE.filter((x) => !x.path.startsWith("scheduler/")), INDEX), "E_CHECKPOINT_INVALID", /scheduler/);
});

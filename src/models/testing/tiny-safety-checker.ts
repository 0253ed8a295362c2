/**
 * A seeded tiny StableDiffusionSafetyChecker (CLIPConfig with a small vision_config) and its CLIPImageProcessor
 * config, written into a checkpoint folder (`safety_checker/`, `feature_extractor/`, both listed in model_index.json)
 * or on their own (a folder like CompVis/stable-diffusion-safety-checker). Weight names and shapes are recorded from
 * the graph builder; values come from the same seeded writer as every tiny checkpoint (thresholds, being 1-D
 * parameters without `.weight`, are uniform in +-0.05, so random images score on both sides of them).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openComponentWeights, readTensorData, writeSafetensors } from "../../graph/safetensors.ts";
import { createRecordingWeights } from "../../graph/weights.ts";
import { buildSafetyCheckerGraph, safetyCheckerConfigFromJson } from "../components/safety-checker.graph.ts";
import { type RandomWeightDtype, writeRandomSafetensors } from "./random-safetensors.ts";

export const TINY_SAFETY_CONFIG = {
  architectures: ["StableDiffusionSafetyChecker"],
  model_type: "clip",
  projection_dim: 8,
  vision_config: { hidden_size: 16, intermediate_size: 32, num_attention_heads: 2, num_hidden_layers: 2, image_size: 16, patch_size: 8, hidden_act: "quick_gelu", layer_norm_eps: 1e-5 },
};

export const TINY_PREPROCESSOR = {
  crop_size: { height: 16, width: 16 },
  do_center_crop: true,
  do_normalize: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  rescale_factor: 1 / 255,
  size: { shortest_edge: 16 },
  image_processor_type: "CLIPImageProcessor",
};

function writeJson(file: string, v: unknown): void {
  writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

export interface TinySafetyCheckerOptions {
  seed: number;
  dtype?: RandomWeightDtype;
  /** Replace the random thresholds (special_care_embeds_weights, concept_embeds_weights) by these constants. */
  thresholds?: { special: number; concept: number };
}

/** Rewrites a checker's thresholds, keeping every other weight (stored as F32). */
export function setSafetyThresholds(dir: string, special: number, concept: number): void {
  const entries = openComponentWeights(dir);
  const tensors = [...entries.values()].map((e) => {
    const t = e.name === "special_care_embeds_weights" ? special : e.name === "concept_embeds_weights" ? concept : undefined;
    const data = t === undefined ? readTensorData(e) : new Float32Array(e.shape[0]).fill(t);
    return { name: e.name, dtype: "F32" as const, shape: e.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  });
  writeSafetensors(join(dir, "model.safetensors"), tensors);
}

/** Writes config.json, model.safetensors and preprocessor_config.json into `dir` (a standalone checker folder). */
export function writeTinySafetyCheckerFolder(dir: string, opts: TinySafetyCheckerOptions): void {
  mkdirSync(dir, { recursive: true });
  writeJson(join(dir, "config.json"), TINY_SAFETY_CONFIG);
  writeJson(join(dir, "preprocessor_config.json"), TINY_PREPROCESSOR);
  const dtype = opts.dtype ?? "F32";
  const rec = createRecordingWeights({ dtype });
  buildSafetyCheckerGraph(safetyCheckerConfigFromJson(TINY_SAFETY_CONFIG), rec.source);
  writeRandomSafetensors(join(dir, "model.safetensors"), rec.recorded(), { seed: opts.seed, dtype, namespace: "safety_checker" });
  if (opts.thresholds) setSafetyThresholds(dir, opts.thresholds.special, opts.thresholds.concept);
}

/** Adds `safety_checker/` and `feature_extractor/` to the diffusers checkpoint in `modelDir` and lists them in model_index.json. */
export function addTinySafetyChecker(modelDir: string, opts: TinySafetyCheckerOptions): void {
  writeTinySafetyCheckerFolder(join(modelDir, "safety_checker"), opts);
  const fe = join(modelDir, "feature_extractor");
  mkdirSync(fe, { recursive: true });
  writeJson(join(fe, "preprocessor_config.json"), TINY_PREPROCESSOR);
  const indexFile = join(modelDir, "model_index.json");
  const index = existsSync(indexFile) ? (JSON.parse(readFileSync(indexFile, "utf8")) as Record<string, unknown>) : {};
  index.safety_checker = ["stable_diffusion", "StableDiffusionSafetyChecker"];
  index.feature_extractor = ["transformers", "CLIPImageProcessor"];
  index.requires_safety_checker = true;
  writeJson(indexFile, index);
}

/**
 * A component directory (`config.json` + safetensors, sharded or not, any weight variant) -> a cached ONNX model
 * ready for `createSession` (src/runtime/session.ts). Every component builder goes through here, so the cache key
 * (weight files, config, builder version, dtype, execution provider, build options) is formed in one place.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parsePythonJson } from "../../checkpoint/python-json.ts";
import { EaselError } from "../../core/errors.ts";
import type { BuiltGraph } from "../../graph/builder.ts";
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex, type WeightVariant } from "../../graph/safetensors.ts";
import { createSafetensorsWeights, type WeightSource } from "../../graph/weights.ts";

export interface PrepareComponentOptions {
  cacheDir: string;
  /** Weight variant files to use (`model.fp16.safetensors`); default: the plain files. */
  variant?: WeightVariant;
  executionProvider?: "cpu" | "cuda";
  /**
   * Store half-precision weights as float32 in the graph cache (src/graph/float32-weights.ts); default on for the
   * CPU, whose graphs compute in float32: session creation then holds one copy of the weights, not two.
   */
  float32Weights?: boolean;
}

export interface PreparedModel<C> {
  modelPath: string;
  config: C;
  /** True when the graph came from the cache. */
  cacheHit: boolean;
}

export function readComponentConfig(componentDir: string): { json: Record<string, unknown>; file: string } {
  const file = join(componentDir, "config.json");
  try {
    // Python's json dialect (Infinity / -Infinity / NaN), as diffusers and transformers write configs.
    return { json: parsePythonJson(readFileSync(file, "utf8")) as Record<string, unknown>, file };
  } catch (e) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: cannot read component config (${(e as Error).message})`, { details: { file }, cause: e });
  }
}

export interface ComponentSpec<C, O> {
  /** Cache entry name, e.g. "unet" or "vae-decoder". */
  component: string;
  /** Bumped when the builder's output changes, so cached graphs are rebuilt. */
  builderVersion: string;
  parseConfig: (json: Record<string, unknown>, file: string) => C;
  /** Build options; part of the cache key. */
  options: O;
  build: (config: C, weights: WeightSource, options: O) => BuiltGraph;
}

export function prepareComponent<C, O>(componentDir: string, opts: PrepareComponentOptions, spec: ComponentSpec<C, O>): PreparedModel<C> {
  const { json, file } = readComponentConfig(componentDir);
  const config = spec.parseConfig(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: spec.component,
      weightFiles: files,
      config,
      builderVersion: spec.builderVersion,
      dtype: "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: spec.options,
      float32Weights: opts.float32Weights ?? (opts.executionProvider ?? "cpu") === "cpu",
    },
    () => spec.build(config, createSafetensorsWeights(readSafetensorsIndex(files), componentDir), spec.options),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

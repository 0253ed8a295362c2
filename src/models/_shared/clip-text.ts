/**
 * A CLIP text encoder component directory (`config.json` + safetensors) -> a cached ONNX model ready for
 * `createSession` (src/runtime/session.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EaselError } from "../../core/errors.ts";
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex, type WeightVariant } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { buildClipTextGraph, type ClipTextConfig, type ClipTextGraphOptions, clipTextConfigFromJson } from "./clip-text.graph.ts";

/** Bump when buildClipTextGraph's output changes, so cached graphs are rebuilt. */
export const CLIP_TEXT_GRAPH_VERSION = "clip-text.2";

export interface PrepareComponentOptions {
  cacheDir: string;
  /** Weight variant files to use (`model.fp16.safetensors`); default: the plain files. */
  variant?: WeightVariant;
  executionProvider?: "cpu" | "cuda";
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
    return { json: JSON.parse(readFileSync(file, "utf8")), file };
  } catch (e) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: cannot read component config (${(e as Error).message})`, { details: { file }, cause: e });
  }
}

export function prepareClipTextModel(
  componentDir: string,
  opts: PrepareComponentOptions & ClipTextGraphOptions,
): PreparedModel<ClipTextConfig> {
  const { json, file } = readComponentConfig(componentDir);
  const config = clipTextConfigFromJson(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const graphOptions: ClipTextGraphOptions = {
    outputHiddenStates: opts.outputHiddenStates ?? false,
    outputNormedHiddenStates: opts.outputNormedHiddenStates ?? false,
  };
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: "clip-text",
      weightFiles: files,
      config,
      builderVersion: CLIP_TEXT_GRAPH_VERSION,
      dtype: "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: graphOptions,
    },
    () => buildClipTextGraph(config, createSafetensorsWeights(readSafetensorsIndex(files), componentDir), graphOptions),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

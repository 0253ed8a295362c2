/**
 * An SD3 `transformer` component directory (`config.json` + safetensors, sharded or not) -> a cached ONNX model
 * ready for `createSession` (src/runtime/session.ts).
 */
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { type PreparedModel, type PrepareComponentOptions, readComponentConfig } from "../_shared/clip-text.ts";
import { type Sd3TransformerConfig, sd3TransformerConfigFromJson } from "./config.ts";
import { buildMmditGraph, type MmditGraphOptions } from "./mmdit.graph.ts";

/** Bump when buildMmditGraph's output changes, so cached graphs are rebuilt. */
export const MMDIT_GRAPH_VERSION = "sd3-mmdit.1";

export function prepareMmditModel(componentDir: string, opts: PrepareComponentOptions & MmditGraphOptions): PreparedModel<Sd3TransformerConfig> {
  const { json, file } = readComponentConfig(componentDir);
  const config = sd3TransformerConfigFromJson(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const graphOptions: MmditGraphOptions = { hooks: opts.hooks ?? false };
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: "sd3-transformer",
      weightFiles: files,
      config,
      builderVersion: MMDIT_GRAPH_VERSION,
      dtype: "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: graphOptions,
    },
    () => buildMmditGraph(config, createSafetensorsWeights(readSafetensorsIndex(files), componentDir), graphOptions),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

/** A UNet2DConditionModel component directory -> a cached ONNX model ready for `createSession`. */
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { type PreparedModel, type PrepareComponentOptions, readComponentConfig } from "./clip-text.ts";
import { type UnetConfig, unetConfigFromJson } from "./unet-config.ts";
import { buildUnetGraph, type UnetGraphOptions } from "./unet.graph.ts";

/** Bump when buildUnetGraph's output changes, so cached graphs are rebuilt. */
export const UNET_GRAPH_VERSION = "unet.1";

export function prepareUnetModel(componentDir: string, opts: PrepareComponentOptions & UnetGraphOptions): PreparedModel<UnetConfig> {
  const { json, file } = readComponentConfig(componentDir);
  const config = unetConfigFromJson(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const graphOptions: UnetGraphOptions = { hooks: opts.hooks ?? false };
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: "unet",
      weightFiles: files,
      config,
      builderVersion: UNET_GRAPH_VERSION,
      dtype: "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: graphOptions,
    },
    () => buildUnetGraph(config, createSafetensorsWeights(readSafetensorsIndex(files), componentDir), graphOptions),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

/**
 * A T5 encoder component directory (`text_encoder_3`: `config.json` + safetensors, sharded or not) -> a cached
 * ONNX model ready for `createSession` (src/runtime/session.ts).
 */
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { type PreparedModel, type PrepareComponentOptions, readComponentConfig } from "./clip-text.ts";
import { buildT5EncoderGraph, type T5EncoderConfig, type T5EncoderGraphOptions, t5EncoderConfigFromJson } from "./t5-encoder.graph.ts";

/** Bump when buildT5EncoderGraph's output changes, so cached graphs are rebuilt. */
export const T5_ENCODER_GRAPH_VERSION = "t5-encoder.1";

export function prepareT5EncoderModel(
  componentDir: string,
  opts: PrepareComponentOptions & T5EncoderGraphOptions,
): PreparedModel<T5EncoderConfig> {
  const { json, file } = readComponentConfig(componentDir);
  const config = t5EncoderConfigFromJson(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const graphOptions: T5EncoderGraphOptions = {
    maxSequenceLength: opts.maxSequenceLength ?? 512,
    outputHiddenStates: opts.outputHiddenStates ?? false,
  };
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: "t5-encoder",
      weightFiles: files,
      config,
      builderVersion: T5_ENCODER_GRAPH_VERSION,
      dtype: "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: graphOptions,
    },
    () => buildT5EncoderGraph(config, createSafetensorsWeights(readSafetensorsIndex(files), componentDir), graphOptions),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

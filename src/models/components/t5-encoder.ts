/**
 * A T5 encoder component directory (`text_encoder_3`: `config.json` + safetensors, sharded or not) -> a cached
 * ONNX model ready for `createSession` (src/runtime/session.ts).
 */
import { join } from "node:path";
import { EaselError } from "../../core/errors.ts";
import { type GraphCacheKey, getOrBuildGraph, graphCacheKey } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex } from "../../graph/safetensors.ts";
import { createSafetensorsWeights } from "../../graph/weights.ts";
import { type PrepareComponentOptions, type PreparedModel, readComponentConfig } from "./component.ts";
import { buildT5EncoderGraph, type T5EncoderConfig, type T5EncoderGraphOptions, t5EncoderConfigFromJson } from "./t5-encoder.graph.ts";
import { dequantizeInt8Weights, int8WeightSource, writeT5Int8Weights } from "./t5-int8.ts";

/** Bump when buildT5EncoderGraph's output changes, so cached graphs are rebuilt. */
export const T5_ENCODER_GRAPH_VERSION = "t5-encoder.1";

export interface T5PrepareOptions extends PrepareComponentOptions, T5EncoderGraphOptions {
  /**
   * "int8": weight-only int8 linear layers (./t5-int8.ts), about 1/4 of the fp32 weight memory; the quantised
   * weights are written once into the cache directory. Default: the stored weights, computed in fp32.
   */
  weightQuantization?: "int8";
}

export function prepareT5EncoderModel(componentDir: string, opts: T5PrepareOptions): PreparedModel<T5EncoderConfig> {
  const { json, file } = readComponentConfig(componentDir);
  const config = t5EncoderConfigFromJson(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const graphOptions: T5EncoderGraphOptions = {
    maxSequenceLength: opts.maxSequenceLength ?? 512,
    outputHiddenStates: opts.outputHiddenStates ?? false,
  };
  const quant = opts.weightQuantization;
  if (quant !== undefined && quant !== "int8") {
    throw new EaselError("E_INPUT_INVALID", `weightQuantization must be "int8" or absent, got ${JSON.stringify(quant)}`, { param: "weightQuantization" });
  }
  const key: GraphCacheKey = {
    component: quant ? "t5-encoder-int8" : "t5-encoder",
    weightFiles: files,
    config,
    builderVersion: T5_ENCODER_GRAPH_VERSION,
    dtype: "float32",
    executionProvider: opts.executionProvider ?? "cpu",
    // "int8-t": int8 weights stored transposed for DequantizeLinear(axis=1) -> MatMul (./t5-int8.ts).
    options: { ...graphOptions, quant: quant ? "int8-t2" : null },
  };
  const cached = getOrBuildGraph(opts.cacheDir, key, () => {
    const index = readSafetensorsIndex(files);
    const weights = createSafetensorsWeights(index, componentDir);
    if (!quant) return buildT5EncoderGraph(config, weights, graphOptions);
    const file = join(opts.cacheDir, `t5-encoder-int8-weights-${graphCacheKey(key)}.bin`);
    const quantized = writeT5Int8Weights(index, file);
    return dequantizeInt8Weights(buildT5EncoderGraph(config, int8WeightSource(weights, file, quantized), graphOptions), quantized);
  });
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit };
}

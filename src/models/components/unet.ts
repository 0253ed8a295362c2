/** A UNet2DConditionModel component directory -> a cached ONNX model ready for `createSession`. */
import { type PrepareComponentOptions, type PreparedModel, prepareComponent } from "./component.ts";
import { buildUnetGraph, type UnetGraphOptions } from "./unet.graph.ts";
import { type UnetConfig, unetConfigFromJson } from "./unet-config.ts";

/** Bump when buildUnetGraph's output changes, so cached graphs are rebuilt. */
export const UNET_GRAPH_VERSION = "unet.2";

export function prepareUnetModel(componentDir: string, opts: PrepareComponentOptions & UnetGraphOptions): PreparedModel<UnetConfig> {
  return prepareComponent(componentDir, opts, {
    component: "unet",
    builderVersion: UNET_GRAPH_VERSION,
    parseConfig: unetConfigFromJson,
    options: { hooks: opts.hooks ?? false } satisfies UnetGraphOptions,
    build: buildUnetGraph,
    // The first and last convolutions (4 latent channels) and the time-embedding linears (one row per image) stay
    // float: they are a sliver of the work and the first and last layers carry the most quantisation error.
    int8: { exclude: ["conv_in.", "conv_out.", "time_embedding.", "add_embedding.", "time_emb_proj."] },
  });
}

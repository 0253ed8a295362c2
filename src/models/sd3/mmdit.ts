/**
 * An SD3 `transformer` component directory (`config.json` + safetensors, sharded or not) -> a cached ONNX model
 * ready for `createSession` (src/runtime/session.ts).
 */
import { type PrepareComponentOptions, type PreparedModel, prepareComponent } from "../components/component.ts";
import { type Sd3TransformerConfig, sd3TransformerConfigFromJson } from "./config.ts";
import { buildMmditGraph, type MmditGraphOptions } from "./mmdit.graph.ts";

/** Bump when buildMmditGraph's output changes, so cached graphs are rebuilt. */
export const MMDIT_GRAPH_VERSION = "sd3-mmdit.2";

export function prepareMmditModel(componentDir: string, opts: PrepareComponentOptions & MmditGraphOptions): PreparedModel<Sd3TransformerConfig> {
  return prepareComponent(componentDir, opts, {
    component: "sd3-transformer",
    builderVersion: MMDIT_GRAPH_VERSION,
    parseConfig: sd3TransformerConfigFromJson,
    options: { hooks: opts.hooks ?? false } satisfies MmditGraphOptions,
    build: buildMmditGraph,
  });
}

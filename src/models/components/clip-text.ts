/**
 * A CLIP text encoder component directory (`config.json` + safetensors) -> a cached ONNX model ready for
 * `createSession` (src/runtime/session.ts).
 */
import { buildClipTextGraph, type ClipTextConfig, type ClipTextGraphOptions, clipTextConfigFromJson } from "./clip-text.graph.ts";
import { type PrepareComponentOptions, type PreparedModel, prepareComponent } from "./component.ts";

export type { PrepareComponentOptions, PreparedModel } from "./component.ts";
export { readComponentConfig } from "./component.ts";

/** Bump when buildClipTextGraph's output changes, so cached graphs are rebuilt. */
export const CLIP_TEXT_GRAPH_VERSION = "clip-text.2";

export function prepareClipTextModel(
  componentDir: string,
  opts: PrepareComponentOptions & ClipTextGraphOptions,
): PreparedModel<ClipTextConfig> {
  return prepareComponent(componentDir, opts, {
    component: "clip-text",
    builderVersion: CLIP_TEXT_GRAPH_VERSION,
    parseConfig: clipTextConfigFromJson,
    options: {
      outputHiddenStates: opts.outputHiddenStates ?? false,
      outputNormedHiddenStates: opts.outputNormedHiddenStates ?? false,
    } satisfies ClipTextGraphOptions,
    build: buildClipTextGraph,
  });
}

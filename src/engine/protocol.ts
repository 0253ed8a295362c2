/** Messages between the engine (main thread) and its inference worker thread. */
import type { ModelDescription, PipelineImage, PipelineOutput, PipelineParams, RuntimeOptions } from "../models/pipeline/family.ts";
import type { SafetyRun } from "./safety.ts";

export interface WorkerInit {
  runtime: RuntimeOptions;
}

export type ToWorker =
  | { type: "describe"; id: number; modelDir: string }
  | { type: "run"; id: number; modelDir: string; params: PipelineParams; cancel: SharedArrayBuffer; safety?: SafetyRun }
  | { type: "release"; id: number; modelDir?: string }
  | { type: "embed"; id: number; modelDir: string; texts: string[] };

export interface SerializedError {
  code: string;
  message: string;
  param?: string;
  name: string;
}

export type FromWorker =
  | ({ type: "described"; id: number } & ModelDescription)
  | { type: "step"; id: number; step: number; totalSteps: number }
  | { type: "preview"; id: number; index: number; step: number; images: PipelineImage[] }
  | { type: "done"; id: number; output: PipelineOutput }
  | { type: "released"; id: number }
  | { type: "embedded"; id: number; vectors: Float32Array[] }
  | { type: "error"; id: number; error: SerializedError };

/**
 * A component directory (`config.json` + safetensors, sharded or not, any weight variant) -> a cached ONNX model
 * ready for `createSession` (src/runtime/session.ts). Every component builder goes through here, so the cache key
 * (weight files, config, builder version, dtype, execution provider, build options) is formed in one place.
 */
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parsePythonJson } from "../../checkpoint/python-json.ts";
import { EaselError } from "../../core/errors.ts";
import type { Warning } from "../../core/types.ts";
import type { BuiltGraph } from "../../graph/builder.ts";
import { getOrBuildGraph } from "../../graph/cache.ts";
import { findComponentWeightFiles, readSafetensorsIndex, type TensorEntry, type WeightVariant } from "../../graph/safetensors.ts";
import { createSafetensorsWeights, type WeightSource } from "../../graph/weights.ts";
import type { SessionTuning } from "../../runtime/session.ts";
import { type LoraChoice, type LoraModule, mergeLorasIntoComponent } from "./lora.ts";

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
  /**
   * "int8": the component's linear and convolution weights quantised per output channel, activations per call
   * (src/graph/int8-weights.ts), on components that declare `int8` in their spec; others stay float32. Default fp32.
   */
  precision?: Precision;
  /** LoRAs merged into this component's weights (./lora.ts); the component is named by its folder's name. */
  loras?: LoraApplication;
}

/** A LoRA set for one pipeline load: the choices, and the modules applied so far (to find ones no component took). */
export interface LoraApplication {
  choices: readonly LoraChoice[];
  applied: (file: string, m: LoraModule) => void;
}

/** engine.precision: fp32 (exact), or the opt-in int8 path whose results differ slightly and say so. */
export type Precision = "fp32" | "int8";

export interface PreparedModel<C> {
  modelPath: string;
  config: C;
  /** True when the graph came from the cache. */
  cacheHit: boolean;
  /** True when the graph runs the int8 path (its results differ from fp32). */
  int8?: boolean;
  /** Session settings this graph asks for (createSession's options on top of the runtime's). */
  session?: SessionTuning;
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
  /** The component runs with int8 weights when asked (precision "int8"); layers named by `exclude` stay float. */
  int8?: { exclude: readonly string[] };
  /** Session settings the graph asks for (PreparedModel.session). */
  session?: SessionTuning;
}

export function prepareComponent<C, O>(componentDir: string, opts: PrepareComponentOptions, spec: ComponentSpec<C, O>): PreparedModel<C> {
  const { json, file } = readComponentConfig(componentDir);
  const config = spec.parseConfig(json, file);
  const { files } = findComponentWeightFiles(componentDir, { variant: opts.variant });
  const int8 = opts.precision === "int8" && spec.int8 ? { exclude: spec.int8.exclude } : undefined;
  let index: Map<string, TensorEntry> | undefined;
  const readIndex = () => {
    index ??= readSafetensorsIndex(files);
    return index;
  };
  const merged =
    opts.loras && opts.loras.choices.length > 0
      ? mergeLorasIntoComponent({
          component: basename(componentDir),
          index: readIndex(),
          weightFiles: files,
          choices: opts.loras.choices,
          cacheDir: opts.cacheDir,
          onApplied: opts.loras.applied,
        })
      : undefined;
  const cached = getOrBuildGraph(
    opts.cacheDir,
    {
      component: spec.component,
      // The merged LoRA tensors' file is part of the graph's identity like any weight file.
      weightFiles: merged ? [...files, merged.file] : files,
      config,
      builderVersion: spec.builderVersion,
      dtype: int8 ? "int8" : "float32",
      executionProvider: opts.executionProvider ?? "cpu",
      options: spec.options,
      float32Weights: opts.float32Weights ?? (opts.executionProvider ?? "cpu") === "cpu",
      int8,
    },
    () => spec.build(config, createSafetensorsWeights(merged ? new Map([...readIndex(), ...merged.entries]) : readIndex(), componentDir), spec.options),
  );
  return { modelPath: cached.modelPath, config, cacheHit: cached.hit, int8: int8 !== undefined, ...(spec.session ? { session: spec.session } : {}) };
}

/** A prepared graph's path and the session settings it asks for, as createSession-style factories take them. */
export function sessionArgs(model: PreparedModel<unknown>): [modelPath: string, tuning: SessionTuning | undefined] {
  return [model.modelPath, model.session];
}

/** The W_QUANTIZED warning every result of an int8 component carries; none for fp32. */
export function precisionWarnings(model: Pick<PreparedModel<unknown>, "int8">, component: string): Warning[] {
  if (!model.int8) return [];
  return [
    {
      code: "W_QUANTIZED",
      message: `the ${component} ran with int8 weights and activations (engine.precision "int8"): results differ slightly from fp32`,
    },
  ];
}

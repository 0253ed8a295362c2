/**
 * Reads a diffusers pipeline directory (`DiffusionPipeline.save_pretrained` layout): `model_index.json` names each
 * component as `[library, class]` (or `[null, null]` when absent, e.g. SD3 saved without T5); model components
 * have `config.json` + safetensors weights, the scheduler `scheduler_config.json`, tokenizers their own files.
 * Only headers are read here; tensor bytes are read later, per tensor.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import { findComponentWeightFiles, readSafetensorsIndex, type TensorEntry, type WeightVariant } from "../graph/safetensors.ts";
import { parsePythonJson } from "./python-json.ts";

export interface CheckpointComponent {
  name: string;
  /** `[library, class]` from model_index.json, e.g. `["diffusers", "UNet2DConditionModel"]`. */
  library: string;
  className: string;
  dir: string;
  config: Record<string, unknown>;
  weights: Map<string, TensorEntry>;
  weightFiles: string[];
  /** The weight variant actually loaded (undefined = the plain files). */
  variant?: WeightVariant;
}

export interface Checkpoint {
  dir: string;
  pipelineClass: string;
  modelIndex: Record<string, unknown>;
  /** Model components by model_index name; null where model_index lists `[null, null]`. */
  components: Record<string, CheckpointComponent | null>;
  schedulerClass: string;
  schedulerConfig: Record<string, unknown>;
  /** Tokenizer folders by component name (`tokenizer`, `tokenizer_2`, `tokenizer_3`). */
  tokenizers: Record<string, { dir: string; className: string }>;
}

export interface LoadCheckpointOptions {
  /** Load this weight variant where a component has it (plain files elsewhere). */
  variant?: WeightVariant;
}

function invalid(file: string, what: string, cause?: unknown): EaselError {
  return new EaselError("E_CHECKPOINT_INVALID", `${file}: ${what}`, { details: { file }, cause });
}

function readJsonObject(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw invalid(file, "file is missing");
  let v: unknown;
  try {
    // Python's json dialect: diffusers writes non-finite floats as Infinity / -Infinity / NaN.
    v = parsePythonJson(readFileSync(file, "utf8"));
  } catch (e) {
    throw invalid(file, `not valid JSON (${(e as Error).message})`, e);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw invalid(file, "is not a JSON object");
  return v as Record<string, unknown>;
}

const PROCESSOR_RE = /(ImageProcessor|FeatureExtractor)$/;

function loadWeights(dir: string, variant: WeightVariant | undefined) {
  if (variant) {
    try {
      return findComponentWeightFiles(dir, { variant });
    } catch (e) {
      // A component without the requested variant (e.g. a VAE kept in fp32) loads its plain files, as diffusers does.
      if (!(e instanceof EaselError) || !/no .* variant safetensors/.test(e.message)) throw e;
    }
  }
  return findComponentWeightFiles(dir);
}

/** Reads and validates a diffusers checkpoint directory. Which family runs it is the families' call (models/index.ts). */
export function loadCheckpoint(dir: string, opts: LoadCheckpointOptions = {}): Checkpoint {
  const root = resolve(dir);
  if (!existsSync(root)) throw invalid(root, "checkpoint directory does not exist");
  if (!statSync(root).isDirectory()) {
    throw new EaselError(
      "E_NOT_SUPPORTED",
      `${root}: single-file checkpoints are not supported; use a diffusers directory (model_index.json + component folders)`,
      { details: { file: root } },
    );
  }
  const indexFile = join(root, "model_index.json");
  const modelIndex = readJsonObject(indexFile);
  const pipelineClass = modelIndex._class_name;
  if (typeof pipelineClass !== "string") throw invalid(indexFile, "_class_name is missing");

  const components: Record<string, CheckpointComponent | null> = {};
  const tokenizers: Record<string, { dir: string; className: string }> = {};
  let schedulerClass: string | undefined;
  let schedulerConfig: Record<string, unknown> | undefined;
  for (const [name, spec] of Object.entries(modelIndex)) {
    if (name.startsWith("_") || !Array.isArray(spec)) continue; // _class_name, flags like force_zeros_for_empty_prompt
    if (spec.length !== 2) throw invalid(indexFile, `component "${name}" is not [library, class]`);
    const [library, className] = spec as unknown[];
    if (library === null || className === null) {
      components[name] = null;
      continue;
    }
    if (typeof library !== "string" || typeof className !== "string") {
      throw invalid(indexFile, `component "${name}" is not [library, class] strings`);
    }
    const cdir = join(root, name);
    if (!existsSync(cdir)) throw invalid(cdir, `component folder "${name}" named in model_index.json is missing`);
    if (className.endsWith("Scheduler")) {
      schedulerClass = className;
      schedulerConfig = readJsonObject(join(cdir, "scheduler_config.json"));
    } else if (className.includes("Tokenizer")) {
      tokenizers[name] = { dir: cdir, className };
    } else if (PROCESSOR_RE.test(className)) {
      // Image processors (safety checker inputs) carry no weights the engine uses.
    } else {
      const config = readJsonObject(join(cdir, "config.json"));
      const found = loadWeights(cdir, opts.variant);
      components[name] = {
        name,
        library,
        className,
        dir: cdir,
        config,
        weights: readSafetensorsIndex(found.files),
        weightFiles: found.files,
        variant: found.variant,
      };
    }
  }
  if (!schedulerClass || !schedulerConfig) throw invalid(indexFile, "names no scheduler component");
  return { dir: root, pipelineClass, modelIndex, components, schedulerClass, schedulerConfig, tokenizers };
}

/**
 * Weight access for graph builders. A builder asks for every parameter by its checkpoint key and the shape it
 * expects; two implementations answer:
 * - `createSafetensorsWeights`: backed by the headers of real safetensors files; the graph points ONNX external
 *   data at the tensor's bytes inside those files (nothing is copied);
 * - `createRecordingWeights`: records every requested name/shape, so a tiny-checkpoint generator can write random
 *   weights for exactly what the builder reads, without repeating any architecture knowledge.
 */
import { EaselError } from "../core/errors.ts";
import type { OnnxDtype } from "./onnx-proto.ts";
import type { SafetensorsDtype, TensorEntry } from "./safetensors.ts";

export type WeightLocation =
  /** Bytes inside a file (absolute path) at an absolute offset. */
  | { kind: "file"; file: string; offset: number; byteLength: number }
  /** Bytes already in memory (small tensors, tests). */
  | { kind: "inline"; bytes: Uint8Array }
  /** Only the name and shape are known (recording); such a graph can be inspected but not encoded. */
  | { kind: "none" };

export interface WeightRef {
  name: string;
  dtype: OnnxDtype;
  shape: number[];
  location: WeightLocation;
}

export interface WeightSource {
  /** The weight `name` with exactly `expectedShape`; throws E_CHECKPOINT_INVALID naming the key and file otherwise. */
  get(name: string, expectedShape: number[]): WeightRef;
  /** Whether the checkpoint holds `name` (for optional parameters whose presence is not fixed by the config). */
  has(name: string): boolean;
}

const FROM_SAFETENSORS: Partial<Record<SafetensorsDtype, OnnxDtype>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

export const TO_SAFETENSORS: Readonly<Record<OnnxDtype, SafetensorsDtype>> = {
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float64: "F64",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const fmt = (s: number[]) => `[${s.join(", ")}]`;

/**
 * A WeightSource over a safetensors name -> entry map (from `openComponentWeights` / `readSafetensorsIndex`).
 * `label` names the checkpoint in errors when the map is empty or a key is missing (e.g. the component directory).
 */
export function createSafetensorsWeights(index: Map<string, TensorEntry>, label: string): WeightSource {
  const files = () => [...new Set([...index.values()].map((e) => e.file))].join(", ") || label;
  return {
    has: (name) => index.has(name),
    get(name, expectedShape) {
      const e = index.get(name);
      if (!e) {
        throw new EaselError("E_CHECKPOINT_INVALID", `weight "${name}" is missing from ${files()}`, {
          details: { key: name, files: files(), expectedShape },
        });
      }
      if (!sameShape(e.shape, expectedShape)) {
        throw new EaselError(
          "E_CHECKPOINT_INVALID",
          `weight "${name}" in ${e.file} has shape ${fmt(e.shape)}, expected ${fmt(expectedShape)} for this config`,
          { details: { key: name, file: e.file, shape: e.shape, expectedShape } },
        );
      }
      const dtype = FROM_SAFETENSORS[e.dtype];
      if (!dtype) throw new EaselError("E_CHECKPOINT_INVALID", `weight "${name}" in ${e.file} has unsupported dtype ${e.dtype}`);
      return { name, dtype, shape: e.shape, location: { kind: "file", file: e.file, offset: e.offset, byteLength: e.byteLength } };
    },
  };
}

/** A WeightSource over in-memory float32 arrays (unit tests of single ops and blocks). */
export function createInlineWeights(tensors: Record<string, { shape: number[]; data: Float32Array }>): WeightSource {
  return {
    has: (name) => name in tensors,
    get(name, expectedShape) {
      const t = tensors[name];
      if (!t) throw new EaselError("E_CHECKPOINT_INVALID", `weight "${name}" is missing from the inline weights`, { details: { key: name } });
      if (!sameShape(t.shape, expectedShape)) {
        throw new EaselError("E_CHECKPOINT_INVALID", `weight "${name}" has shape ${fmt(t.shape)}, expected ${fmt(expectedShape)}`, {
          details: { key: name, shape: t.shape, expectedShape },
        });
      }
      return { name, dtype: "float32", shape: t.shape, location: { kind: "inline", bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) } };
    },
  };
}

export interface RecordedWeight {
  name: string;
  shape: number[];
  dtype: SafetensorsDtype;
}

export interface RecordingWeights {
  source: WeightSource;
  /** Every distinct weight requested, in first-request order. */
  recorded(): RecordedWeight[];
}

/**
 * Records requests instead of reading files. `has()` answers true, so optional parameters are recorded too (the
 * generated checkpoint has the standard, full layout). Asking for one name with two different shapes is a builder
 * bug and throws.
 */
export function createRecordingWeights(opts: { dtype?: SafetensorsDtype } = {}): RecordingWeights {
  const dtype = opts.dtype ?? "F32";
  const seen = new Map<string, RecordedWeight>();
  return {
    recorded: () => [...seen.values()],
    source: {
      has: () => true,
      get(name, expectedShape) {
        const prior = seen.get(name);
        if (prior && !sameShape(prior.shape, expectedShape)) {
          throw new EaselError("E_INTERNAL", `weight "${name}" requested as ${fmt(prior.shape)} and as ${fmt(expectedShape)}`);
        }
        if (!prior) seen.set(name, { name, shape: [...expectedShape], dtype });
        return { name, dtype: FROM_SAFETENSORS[dtype] ?? "float32", shape: [...expectedShape], location: { kind: "none" } };
      },
    },
  };
}

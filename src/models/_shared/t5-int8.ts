/**
 * Opt-in weight-only int8 quantisation of the T5 encoder's linear layers (symmetric, one float32 scale per output
 * row, values rounded to the nearest step), to hold T5-XXL in about a quarter of its fp32
 * memory. The quantised weights are written once to a raw file beside the graph cache; the graph reads them through
 * `DequantizeLinear` (axis 0), which onnxruntime keeps out of constant folding, so only int8 stays resident and each
 * MatMul dequantises its weight when it runs. Embeddings, norms and the position bias stay as stored.
 */
import { closeSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { BuiltGraph } from "../../graph/builder.ts";
import { readTensorData, type TensorEntry } from "../../graph/safetensors.ts";
import type { WeightRef, WeightSource } from "../../graph/weights.ts";

/** The T5 linear weights that are quantised: attention q/k/v/o and the feed-forward wi/wi_0/wi_1/wo. */
export const T5_LINEAR_RE = /\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi|wi_0|wi_1|wo))\.weight$/;

export interface QuantizedTensor {
  /** Byte offset of the int8 rows in the weight file. */
  offset: number;
  shape: [number, number];
  /** Per output row. */
  scales: Float32Array;
}

/** Symmetric per-row int8: q = round(w / s), s = max|row| / 127 (s = 1 for an all-zero row). */
export function quantizeRows(w: Float32Array, rows: number, cols: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
    const s = m > 0 ? Math.fround(m / 127) : 1;
    scales[r] = s;
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / s)));
  }
  return { q, scales };
}

/**
 * Quantises every T5 linear weight of `index` into `file` (written to a temporary name, then renamed), one
 * tensor at a time so memory stays at one fp32 tensor. Returns where each tensor's rows are.
 */
export function writeT5Int8Weights(index: Map<string, TensorEntry>, file: string): Map<string, QuantizedTensor> {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  const out = new Map<string, QuantizedTensor>();
  let offset = 0;
  try {
    for (const [name, entry] of [...index].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!T5_LINEAR_RE.test(name) || entry.shape.length !== 2) continue;
      const [rows, cols] = entry.shape;
      const { q, scales } = quantizeRows(readTensorData(entry), rows, cols);
      writeSync(fd, new Uint8Array(q.buffer), 0, q.byteLength, offset);
      out.set(name, { offset, shape: [rows, cols], scales });
      offset += q.byteLength;
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return out;
}

/** A WeightSource that answers quantised names with their int8 rows in `file` and passes the rest through. */
export function int8WeightSource(base: WeightSource, file: string, quantized: Map<string, QuantizedTensor>): WeightSource {
  return {
    has: (name) => base.has(name),
    get(name, expectedShape): WeightRef {
      const q = quantized.get(name);
      if (!q) return base.get(name, expectedShape);
      base.get(name, expectedShape); // shape check against the checkpoint
      return { name, dtype: "int8", shape: q.shape, location: { kind: "file", file, offset: q.offset, byteLength: q.shape[0] * q.shape[1] } };
    },
  };
}

/**
 * Rewrites the builder's `Cast(int8 weight -> float32)` nodes into `DequantizeLinear(weight, scale, 0, axis=0)`
 * and adds the scale and zero-point initializers (inline: a few KiB per layer).
 */
export function dequantizeInt8Weights(graph: BuiltGraph, quantized: Map<string, QuantizedTensor>): BuiltGraph {
  const initializers = [...graph.initializers];
  const nodes = graph.nodes.map((n) => {
    const q = n.opType === "Cast" && n.inputs.length === 1 ? quantized.get(n.inputs[0]) : undefined;
    if (!q) return n;
    const rows = q.shape[0];
    const scale = `${n.inputs[0]}.scale`;
    const zero = `${n.inputs[0]}.zero_point`;
    initializers.push({ name: scale, dtype: "float32", dims: [rows], location: { kind: "inline", bytes: new Uint8Array(q.scales.buffer.slice(0)) } });
    initializers.push({ name: zero, dtype: "int8", dims: [rows], location: { kind: "inline", bytes: new Uint8Array(rows) } });
    return { ...n, opType: "DequantizeLinear", inputs: [n.inputs[0], scale, zero], attributes: [{ name: "axis", value: { type: "int" as const, value: 0 } }] };
  });
  return { ...graph, nodes, initializers };
}

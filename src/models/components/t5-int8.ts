/**
 * Opt-in weight-only int8 quantisation of the T5 encoder's linear layers (symmetric, one float32 scale per output
 * row, values rounded to the nearest step), to hold T5-XXL in about a quarter of its fp32 memory. The quantised
 * weights are written once, already transposed to [in, out], to a raw file beside the graph cache; each linear
 * reads its weight through `DequantizeLinear(axis=1)` straight into the MatMul. onnxruntime keeps DequantizeLinear
 * out of constant folding, so only int8 stays resident and each MatMul dequantises its weight when it runs. (With
 * the checkpoint's [out, in] layout and a Transpose after the DequantizeLinear, onnxruntime's transpose optimiser
 * rewrites the pair and session creation held several times the int8 size, measured; hence the stored transpose.)
 * Embeddings, norms and the position bias stay as stored.
 */
import { writeSync } from "node:fs";
import { EaselError } from "../../core/errors.ts";
import type { BuiltGraph, BuiltInitializer } from "../../graph/builder.ts";
import { quantizePerRow } from "../../graph/int8-weights.ts";
import type { NodeSpec } from "../../graph/onnx-proto.ts";
import { readTensorData, type TensorEntry } from "../../graph/safetensors.ts";
import { writeFileThroughTemp } from "../../graph/temp-file.ts";
import type { WeightRef, WeightSource } from "../../graph/weights.ts";

/** The T5 linear weights that are quantised: attention q/k/v/o and the feed-forward wi/wi_0/wi_1/wo. */
export const T5_LINEAR_RE = /\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi|wi_0|wi_1|wo))\.weight$/;

export interface QuantizedTensor {
  /** Byte offset of the int8 values in the weight file, stored transposed: [in, out] = [shape[1], shape[0]]. */
  offset: number;
  /** The checkpoint's [out, in]. */
  shape: [number, number];
  /** Per output row. */
  scales: Float32Array;
}

/**
 * Quantises every T5 linear weight of `index` into `file` (written to a temporary name, then renamed), one
 * tensor at a time so memory stays at one fp32 tensor. Returns where each tensor's rows are.
 */
export function writeT5Int8Weights(index: Map<string, TensorEntry>, file: string): Map<string, QuantizedTensor> {
  const out = new Map<string, QuantizedTensor>();
  let offset = 0;
  writeFileThroughTemp(file, (fd) => {
    for (const [name, entry] of [...index].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!T5_LINEAR_RE.test(name) || entry.shape.length !== 2) continue;
      const [rows, cols] = entry.shape;
      const { q, scales } = quantizePerRow(readTensorData(entry), rows, cols);
      const qt = new Int8Array(q.length); // [cols, rows]
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) qt[c * rows + r] = q[r * cols + c];
      writeSync(fd, new Uint8Array(qt.buffer), 0, qt.byteLength, offset);
      out.set(name, { offset, shape: [rows, cols], scales });
      offset += q.byteLength;
    }
  });
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
 * Rewrites each quantised weight's `Cast(int8 -> float32) -> Transpose([1, 0])` (the builder's linear) into one
 * `DequantizeLinear(weight [in, out], scale, 0, axis=1)` with the Transpose's output, and adds the scale and
 * zero-point initializers (inline: a few KiB per layer).
 */
export function dequantizeInt8Weights(graph: BuiltGraph, quantized: Map<string, QuantizedTensor>): BuiltGraph {
  const consumers = new Map<string, NodeSpec[]>();
  for (const n of graph.nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const dropped = new Set<NodeSpec>();
  const replaced = new Map<NodeSpec, NodeSpec[]>();
  const zeroI64 = "t5_int8.zero_i64";
  const added: BuiltInitializer[] = [{ name: zeroI64, dtype: "int64", dims: [1], location: { kind: "inline", bytes: new Uint8Array(8) } }];
  // A float zero [1] computed from the activation's (dynamic) sequence length: added to the scales, it makes each
  // DequantizeLinear wait for its layer's input, so onnxruntime dequantises weights one layer at a time instead of
  // all of them up front (which held the whole fp32 weight set during a run, measured).
  const zeroOf = new Map<string, { name: string; nodes: NodeSpec[] }>();
  const dependentZero = (x: string) => {
    let z = zeroOf.get(x);
    if (!z) {
      const p = `${x}.int8_dep`;
      const nodes: NodeSpec[] = [
        { opType: "Shape", name: `${p}.shape`, inputs: [x], outputs: [`${p}.len`], attributes: [{ name: "start", value: { type: "int", value: 1 } }, { name: "end", value: { type: "int", value: 2 } }] },
        { opType: "Mul", name: `${p}.mul`, inputs: [`${p}.len`, zeroI64], outputs: [`${p}.zero_i64`], attributes: [] },
        { opType: "Cast", name: `${p}.cast`, inputs: [`${p}.zero_i64`], outputs: [`${p}.zero`], attributes: [{ name: "to", value: { type: "int", value: 1 } }] },
      ];
      z = { name: `${p}.zero`, nodes };
      zeroOf.set(x, z);
      return z;
    }
    return { name: z.name, nodes: [] };
  };
  for (const n of graph.nodes) {
    const q = n.opType === "Cast" && n.inputs.length === 1 ? quantized.get(n.inputs[0]) : undefined;
    if (!q) continue;
    const users = consumers.get(n.outputs[0]) ?? [];
    const t = users[0];
    const perm = t?.attributes.find((a) => a.name === "perm")?.value;
    if (users.length !== 1 || t.opType !== "Transpose" || perm?.type !== "ints" || perm.value.join() !== "1,0") {
      throw new EaselError("E_INTERNAL", `int8 weight ${n.inputs[0]}: expected its cast to feed one Transpose([1, 0]) (a linear layer)`);
    }
    const [rows] = q.shape;
    const scale = `${n.inputs[0]}.scale`;
    const zero = `${n.inputs[0]}.zero_point`;
    added.push({ name: scale, dtype: "float32", dims: [rows], location: { kind: "inline", bytes: new Uint8Array(q.scales.buffer.slice(0)) } });
    added.push({ name: zero, dtype: "int8", dims: [rows], location: { kind: "inline", bytes: new Uint8Array(rows) } });
    const matmul = consumers.get(t.outputs[0])?.find((c) => c.opType === "MatMul" && c.inputs[1] === t.outputs[0]);
    if (!matmul) throw new EaselError("E_INTERNAL", `int8 weight ${n.inputs[0]}: its transpose feeds no MatMul`);
    const dep = dependentZero(matmul.inputs[0]);
    const depScale = `${scale}.dep`;
    dropped.add(n);
    replaced.set(t, [
      ...dep.nodes,
      { opType: "Add", name: `${depScale}.add`, inputs: [scale, dep.name], outputs: [depScale], attributes: [] },
      {
        ...t,
        opType: "DequantizeLinear",
        inputs: [n.inputs[0], depScale, zero],
        attributes: [{ name: "axis", value: { type: "int" as const, value: 1 } }],
      },
    ]);
  }
  const nodes = graph.nodes.filter((n) => !dropped.has(n)).flatMap((n) => replaced.get(n) ?? [n]);
  const initializers = graph.initializers.map((init) => {
    const q = quantized.get(init.name);
    return q ? { ...init, dims: [q.shape[1], q.shape[0]] } : init;
  });
  return { ...graph, nodes, initializers: [...initializers, ...added] };
}

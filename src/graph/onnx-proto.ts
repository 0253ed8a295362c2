/**
 * ONNX ModelProto encoding with protobufjs's low-level Writer. Field numbers follow onnx/onnx.proto (IR version 8):
 * only the messages and fields Easel emits are written. Repeated scalars are written unpacked, which every proto2
 * and proto3 parser accepts.
 */
import protobuf from "protobufjs/minimal.js";
import { EaselError } from "../core/errors.ts";

/** TensorProto.DataType values. */
export const ONNX_DTYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
} as const;
export type OnnxDtype = keyof typeof ONNX_DTYPE;

export const DTYPE_BYTES: Readonly<Record<OnnxDtype, number>> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  bfloat16: 2,
};

/** Tensor data either inline (small constants) or in an external file (checkpoint weights). */
export type TensorPayload =
  | { kind: "raw"; bytes: Uint8Array }
  /** `location` is relative to the directory holding the .onnx file. */
  | { kind: "external"; location: string; offset: number; length: number };

export interface TensorSpec {
  name: string;
  dtype: OnnxDtype;
  dims: number[];
  payload: TensorPayload;
}

export type AttributeValue =
  | { type: "float"; value: number }
  | { type: "int"; value: number }
  | { type: "string"; value: string }
  | { type: "floats"; value: number[] }
  | { type: "ints"; value: number[] }
  | { type: "tensor"; value: TensorSpec };

export interface NodeSpec {
  opType: string;
  name: string;
  domain?: string;
  /** "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: { name: string; value: AttributeValue }[];
}

/** A dimension is a fixed size or a symbolic name ("batch"); no shape at all = unknown rank. */
export interface ValueInfoSpec {
  name: string;
  dtype: OnnxDtype;
  shape?: (number | string)[];
}

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  initializers: TensorSpec[];
  inputs: ValueInfoSpec[];
  outputs: ValueInfoSpec[];
}

export interface ModelSpec {
  irVersion: number;
  opsets: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  graph: GraphSpec;
  metadata?: Record<string, string>;
}

type Writer = protobuf.Writer;
const LEN = 2;
const VARINT = 0;
const I32 = 5;
const tag = (field: number, wire: number) => (field << 3) | wire;

function writeMessage(w: Writer, field: number, body: (w: Writer) => void): void {
  w.uint32(tag(field, LEN)).fork();
  body(w);
  w.ldelim();
}

function writeString(w: Writer, field: number, s: string): void {
  w.uint32(tag(field, LEN)).string(s);
}

function writeInt64(w: Writer, field: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw new EaselError("E_INTERNAL", `ONNX int64 field ${field}: ${v} is not a safe integer`);
  w.uint32(tag(field, VARINT)).int64(v);
}

function writeTensor(w: Writer, t: TensorSpec): void {
  for (const d of t.dims) writeInt64(w, 1, d); // dims
  w.uint32(tag(2, VARINT)).int32(ONNX_DTYPE[t.dtype]); // data_type
  writeString(w, 8, t.name); // name
  if (t.payload.kind === "raw") {
    w.uint32(tag(9, LEN)).bytes(t.payload.bytes); // raw_data
  } else {
    const entries: [string, string][] = [
      ["location", t.payload.location],
      ["offset", String(t.payload.offset)],
      ["length", String(t.payload.length)],
    ];
    for (const [k, v] of entries) {
      writeMessage(w, 13, (m) => {
        writeString(m, 1, k);
        writeString(m, 2, v);
      });
    }
    w.uint32(tag(14, VARINT)).int32(1); // data_location = EXTERNAL
  }
}

function writeAttribute(w: Writer, name: string, a: AttributeValue): void {
  writeString(w, 1, name);
  switch (a.type) {
    case "float":
      w.uint32(tag(2, I32)).float(a.value);
      w.uint32(tag(20, VARINT)).int32(1);
      break;
    case "int":
      writeInt64(w, 3, a.value);
      w.uint32(tag(20, VARINT)).int32(2);
      break;
    case "string":
      w.uint32(tag(4, LEN)).bytes(new TextEncoder().encode(a.value));
      w.uint32(tag(20, VARINT)).int32(3);
      break;
    case "tensor":
      writeMessage(w, 5, (m) => writeTensor(m, a.value));
      w.uint32(tag(20, VARINT)).int32(4);
      break;
    case "floats":
      for (const f of a.value) w.uint32(tag(7, I32)).float(f);
      w.uint32(tag(20, VARINT)).int32(6);
      break;
    case "ints":
      for (const i of a.value) writeInt64(w, 8, i);
      w.uint32(tag(20, VARINT)).int32(7);
      break;
  }
}

function writeNode(w: Writer, n: NodeSpec): void {
  for (const i of n.inputs) writeString(w, 1, i);
  for (const o of n.outputs) writeString(w, 2, o);
  writeString(w, 3, n.name);
  writeString(w, 4, n.opType);
  for (const a of n.attributes) writeMessage(w, 5, (m) => writeAttribute(m, a.name, a.value));
  if (n.domain) writeString(w, 7, n.domain);
}

function writeValueInfo(w: Writer, v: ValueInfoSpec): void {
  writeString(w, 1, v.name);
  // TypeProto { tensor_type = 1: Tensor { elem_type = 1, shape = 2: TensorShapeProto { dim = 1 } } }
  writeMessage(w, 2, (tp) =>
    writeMessage(tp, 1, (tt) => {
      tt.uint32(tag(1, VARINT)).int32(ONNX_DTYPE[v.dtype]);
      const shape = v.shape;
      if (!shape) return; // an empty TensorShapeProto would mean a scalar
      writeMessage(tt, 2, (sh) => {
        for (const d of shape) {
          writeMessage(sh, 1, (dim) => {
            if (typeof d === "number") writeInt64(dim, 1, d);
            else writeString(dim, 2, d);
          });
        }
      });
    }),
  );
}

function writeGraph(w: Writer, g: GraphSpec): void {
  for (const n of g.nodes) writeMessage(w, 1, (m) => writeNode(m, n));
  writeString(w, 2, g.name);
  for (const t of g.initializers) writeMessage(w, 5, (m) => writeTensor(m, t));
  for (const v of g.inputs) writeMessage(w, 11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) writeMessage(w, 12, (m) => writeValueInfo(m, v));
}

/** Serialises a model to ModelProto bytes. Weights with external payloads add only their location to the output. */
export function encodeModel(model: ModelSpec): Uint8Array {
  const w = protobuf.Writer.create();
  writeInt64(w, 1, model.irVersion);
  writeString(w, 2, model.producerName);
  writeString(w, 3, model.producerVersion);
  writeMessage(w, 7, (m) => writeGraph(m, model.graph));
  for (const o of model.opsets) {
    writeMessage(w, 8, (m) => {
      if (o.domain) writeString(m, 1, o.domain);
      writeInt64(m, 2, o.version);
    });
  }
  for (const [k, v] of Object.entries(model.metadata ?? {})) {
    writeMessage(w, 14, (m) => {
      writeString(m, 1, k);
      writeString(m, 2, v);
    });
  }
  return w.finish();
}

/**
 * A small typed ONNX graph builder (default domain, opset 17, IR 8; only ops the onnxruntime CPU provider runs).
 *
 * Usage:
 * ```ts
 * const g = new GraphBuilder({ name: "vae_decoder", weights });         // weights: WeightSource (./weights.ts)
 * const x = g.input("latent", "float32", ["batch", 4, "height", "width"]);
 * let h = conv2d(g, x, "decoder.conv_in", { inChannels: 4, outChannels: 512, kernel: 3, padding: 1 });
 * h = groupNorm(g, h, "decoder.conv_norm_out", { channels: 512, groups: 32, eps: 1e-6 });
 * h = silu(g, h);
 * const y = g.op("Mul", [h, g.f32(0.5)]);                                // any ONNX op, attributes as a record
 * g.output(y, "sample");
 * const { modelPath } = saveModel(g.build(), dir, "vae_decoder.onnx");   // ./external-data.ts
 * ```
 * Helpers (`linear`, `conv2d`, `groupNorm`, `layerNorm`, `attention`, `gelu`, `quickGelu`, `silu`, `reshape`,
 * `transpose`, ...) live in ./ops/*.ts and take the builder as first argument. `g.weight(key, shape)` fetches a
 * checkpoint tensor by its verbatim key (shape checked by the WeightSource), adds it as an initializer once and
 * returns it as float32 (fp16/bf16 weights get a Cast). Attribute values: integers become INT, arrays INTS,
 * strings STRING; attributes named in FLOAT_ATTRIBUTES (epsilon, alpha, beta, ...) become FLOAT/FLOATS.
 */
import { EaselError } from "../core/errors.ts";
import type { AttributeValue, ModelSpec, NodeSpec, OnnxDtype, TensorSpec, ValueInfoSpec } from "./onnx-proto.ts";
import type { WeightLocation, WeightRef, WeightSource } from "./weights.ts";

/** A named tensor in the graph under construction. */
export interface Value {
  readonly name: string;
}

export type AttrInput = number | string | number[] | { tensor: TensorSpec };

/** Attribute names whose numbers are floats in the ops Easel emits. */
export const FLOAT_ATTRIBUTES = new Set(["epsilon", "alpha", "beta", "gamma", "extrapolation_value", "cubic_coeff_a", "scale", "mask_filter_value"]);

export const OPSET = 17;
export const IR_VERSION = 8;

/** An initializer as the builder holds it: bytes stay wherever the WeightLocation says. */
export interface BuiltInitializer {
  name: string;
  dtype: OnnxDtype;
  dims: number[];
  location: WeightLocation;
}

export interface BuiltGraph {
  name: string;
  nodes: NodeSpec[];
  initializers: BuiltInitializer[];
  inputs: ValueInfoSpec[];
  outputs: ValueInfoSpec[];
  /** Absolute paths of every file external initializers point into. */
  externalFiles: string[];
}

export class GraphBuilder {
  readonly name: string;
  readonly weights: WeightSource;
  private readonly nodes: NodeSpec[] = [];
  private readonly inits = new Map<string, BuiltInitializer>();
  private readonly inputs: ValueInfoSpec[] = [];
  private readonly outputs: ValueInfoSpec[] = [];
  private readonly weightValues = new Map<string, Value>();
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(opts: { name: string; weights: WeightSource }) {
    this.name = opts.name;
    this.weights = opts.weights;
  }

  /** A fresh unique value name with a readable prefix. */
  fresh(prefix: string): string {
    let n = `${prefix}_${this.counter++}`;
    while (this.used.has(n)) n = `${prefix}_${this.counter++}`;
    this.used.add(n);
    return n;
  }

  /** A graph input; string dims are symbolic (dynamic). */
  input(name: string, dtype: OnnxDtype, shape: (number | string)[]): Value {
    this.claim(name);
    this.inputs.push({ name, dtype, shape });
    return { name };
  }

  /** Marks `v` as graph output `name` (an Identity renames it when needed). */
  output(v: Value, name: string, dtype: OnnxDtype = "float32", shape?: (number | string)[]): void {
    let src = v;
    if (v.name !== name) {
      this.claim(name);
      this.nodes.push({ opType: "Identity", name: `${name}_out`, inputs: [v.name], outputs: [name], attributes: [] });
      src = { name };
    }
    this.outputs.push({ name: src.name, dtype, shape });
  }

  /** One node with one output. `null` inputs are omitted optional inputs. */
  op(opType: string, inputs: (Value | null)[], attrs: Record<string, AttrInput> = {}, opts: { name?: string; domain?: string } = {}): Value {
    return this.opMulti(opType, inputs, 1, attrs, opts)[0];
  }

  /** One node with `nOutputs` outputs. */
  opMulti(
    opType: string,
    inputs: (Value | null)[],
    nOutputs: number,
    attrs: Record<string, AttrInput> = {},
    opts: { name?: string; domain?: string } = {},
  ): Value[] {
    const outs = Array.from({ length: nOutputs }, () => this.fresh(opts.name ?? opType));
    const attributes = Object.entries(attrs).map(([name, v]) => ({ name, value: toAttribute(opType, name, v) }));
    this.nodes.push({
      opType,
      ...(opts.domain ? { domain: opts.domain } : {}),
      name: outs[0],
      inputs: inputs.map((i) => (i ? i.name : "")),
      outputs: outs,
      attributes,
    });
    return outs.map((name) => ({ name }));
  }

  /** A checkpoint parameter as float32 (stored dtype kept in the initializer, Cast to float32 in the graph). */
  weight(name: string, shape: number[]): Value {
    const cached = this.weightValues.get(name);
    if (cached) return cached;
    const ref: WeightRef = this.weights.get(name, shape);
    this.claim(name);
    this.inits.set(name, { name, dtype: ref.dtype, dims: ref.shape, location: ref.location });
    let v: Value = { name };
    if (ref.dtype !== "float32") v = this.op("Cast", [v], { to: 1 }, { name: `${name}.f32` });
    this.weightValues.set(name, v);
    return v;
  }

  /** A small inline constant. */
  constant(dtype: "float32" | "int64", dims: number[], values: ArrayLike<number>, prefix = "const"): Value {
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) throw new EaselError("E_INTERNAL", `constant ${prefix}: ${values.length} values for dims [${dims}]`);
    const bytes =
      dtype === "float32"
        ? new Uint8Array(Float32Array.from(values).buffer)
        : new Uint8Array(BigInt64Array.from(Array.from(values, (x) => BigInt(x))).buffer);
    const name = this.fresh(prefix);
    this.inits.set(name, { name, dtype, dims, location: { kind: "inline", bytes } });
    return { name };
  }

  /** float32 constant: a scalar (rank 0) for a number, else a 1-D tensor unless dims are given. */
  f32(values: number | ArrayLike<number>, dims?: number[]): Value {
    if (typeof values === "number") return this.constant("float32", dims ?? [], [values], "f32");
    return this.constant("float32", dims ?? [values.length], values, "f32");
  }

  /** int64 constant: a scalar for a number, else 1-D unless dims are given. */
  i64(values: number | ArrayLike<number>, dims?: number[]): Value {
    if (typeof values === "number") return this.constant("int64", dims ?? [], [values], "i64");
    return this.constant("int64", dims ?? [values.length], values, "i64");
  }

  build(): BuiltGraph {
    if (this.outputs.length === 0) throw new EaselError("E_INTERNAL", `graph ${this.name} has no outputs`);
    const initializers = [...this.inits.values()];
    const externalFiles = [
      ...new Set(initializers.flatMap((i) => (i.location.kind === "file" ? [i.location.file] : []))),
    ];
    return {
      name: this.name,
      nodes: [...this.nodes],
      initializers,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      externalFiles,
    };
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new EaselError("E_INTERNAL", `graph ${this.name}: value name "${name}" used twice`);
    this.used.add(name);
  }
}

function toAttribute(opType: string, name: string, v: AttrInput): AttributeValue {
  if (typeof v === "string") return { type: "string", value: v };
  if (typeof v === "number") {
    if (FLOAT_ATTRIBUTES.has(name)) return { type: "float", value: v };
    if (!Number.isInteger(v)) throw new EaselError("E_INTERNAL", `${opType}.${name}: ${v} is not an integer attribute`);
    return { type: "int", value: v };
  }
  if (Array.isArray(v)) return FLOAT_ATTRIBUTES.has(name) ? { type: "floats", value: v } : { type: "ints", value: v };
  return { type: "tensor", value: v.tensor };
}

/**
 * The ModelSpec of a built graph. `locate` maps each absolute external file to the `location` string written into
 * the model (relative to the model's directory); see ./external-data.ts.
 */
export function toModelSpec(graph: BuiltGraph, locate: (file: string) => string, metadata?: Record<string, string>): ModelSpec {
  const initializers: TensorSpec[] = graph.initializers.map((i) => {
    const loc = i.location;
    if (loc.kind === "none") {
      throw new EaselError("E_INTERNAL", `weight "${i.name}" was recorded without data; a recording graph cannot be encoded`);
    }
    return {
      name: i.name,
      dtype: i.dtype,
      dims: i.dims,
      payload:
        loc.kind === "inline"
          ? { kind: "raw", bytes: loc.bytes }
          : { kind: "external", location: locate(loc.file), offset: loc.offset, length: loc.byteLength },
    };
  });
  // Operators outside the default domain (onnxruntime's com.microsoft contrib ops) are version 1 there.
  const domains = [...new Set(graph.nodes.flatMap((n) => (n.domain ? [n.domain] : [])))].sort();
  return {
    irVersion: IR_VERSION,
    opsets: [{ domain: "", version: OPSET }, ...domains.map((domain) => ({ domain, version: 1 }))],
    producerName: "easel",
    producerVersion: "1",
    graph: { name: graph.name, nodes: graph.nodes, initializers, inputs: graph.inputs, outputs: graph.outputs },
    metadata,
  };
}

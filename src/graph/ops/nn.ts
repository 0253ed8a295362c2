/**
 * Neural-network helpers over GraphBuilder. Each parameterised helper takes the checkpoint key prefix of its module
 * (`"…attn1.to_q"`) and reads `<prefix>.weight` / `<prefix>.bias` with the shapes PyTorch stores them in.
 */
import type { GraphBuilder, Value } from "../builder.ts";
import { reshape, split, transpose, unsqueeze } from "./shape.ts";

/** nn.Linear on the last axis: x [..., in] -> [..., out]; weight stored [out, in]. */
export function linear(g: GraphBuilder, x: Value, prefix: string, inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}): Value {
  const w = g.weight(`${prefix}.weight`, [outFeatures, inFeatures]);
  const y = g.op("MatMul", [x, transpose(g, w, [1, 0])]);
  if (opts.bias === false) return y;
  return g.op("Add", [y, g.weight(`${prefix}.bias`, [outFeatures])]);
}

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernel: number;
  stride?: number;
  /** Symmetric zero padding on H and W. */
  padding?: number;
  bias?: boolean;
}

/** nn.Conv2d: x [B, Cin, H, W] -> [B, Cout, H', W']; weight stored [Cout, Cin, k, k]. */
export function conv2d(g: GraphBuilder, x: Value, prefix: string, o: Conv2dOptions): Value {
  const w = g.weight(`${prefix}.weight`, [o.outChannels, o.inChannels, o.kernel, o.kernel]);
  const inputs = [x, w];
  if (o.bias !== false) inputs.push(g.weight(`${prefix}.bias`, [o.outChannels]));
  const p = o.padding ?? 0;
  const s = o.stride ?? 1;
  return g.op("Conv", inputs, { kernel_shape: [o.kernel, o.kernel], pads: [p, p, p, p], strides: [s, s] });
}

/**
 * nn.GroupNorm on x [B, C, H, W]: statistics per (batch, group) over C/G channels and all pixels, then the
 * per-channel affine. Built as InstanceNormalization over [B, G, C/G*H*W], which every ORT provider runs in fp32.
 */
export function groupNorm(g: GraphBuilder, x: Value, prefix: string, o: { channels: number; groups: number; eps: number }): Value {
  const grouped = reshape(g, x, [0, o.groups, -1]); // [B, G, C/G*H*W]
  const ones = g.f32(new Array(o.groups).fill(1));
  const zeros = g.f32(new Array(o.groups).fill(0));
  const normed = g.op("InstanceNormalization", [grouped, ones, zeros], { epsilon: o.eps });
  const back = g.op("Reshape", [normed, g.op("Shape", [x])]); // [B, C, H, W]
  const gamma = unsqueeze(g, g.weight(`${prefix}.weight`, [o.channels]), [1, 2]); // [C, 1, 1]
  const beta = unsqueeze(g, g.weight(`${prefix}.bias`, [o.channels]), [1, 2]);
  return g.op("Add", [g.op("Mul", [back, gamma]), beta]);
}

/** nn.LayerNorm over the last axis (affine). */
export function layerNorm(g: GraphBuilder, x: Value, prefix: string, o: { dim: number; eps: number }): Value {
  const w = g.weight(`${prefix}.weight`, [o.dim]);
  const b = g.weight(`${prefix}.bias`, [o.dim]);
  return g.op("LayerNormalization", [x, w, b], { axis: -1, epsilon: o.eps });
}

export function silu(g: GraphBuilder, x: Value): Value {
  return g.op("Mul", [x, g.op("Sigmoid", [x])]);
}

/** Exact (erf) GELU: 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(g: GraphBuilder, x: Value): Value {
  const e = g.op("Erf", [g.op("Mul", [x, g.f32(Math.SQRT1_2)])]);
  return g.op("Mul", [g.op("Mul", [x, g.op("Add", [e, g.f32(1)])]), g.f32(0.5)]);
}

/** tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`). */
export function geluTanh(g: GraphBuilder, x: Value): Value {
  const x3 = g.op("Mul", [g.op("Mul", [x, x]), x]);
  const inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [x3, g.f32(0.044715)])]), g.f32(Math.sqrt(2 / Math.PI))]);
  return g.op("Mul", [g.op("Mul", [x, g.op("Add", [g.op("Tanh", [inner]), g.f32(1)])]), g.f32(0.5)]);
}

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export function quickGelu(g: GraphBuilder, x: Value): Value {
  return g.op("Mul", [x, g.op("Sigmoid", [g.op("Mul", [x, g.f32(1.702)])])]);
}

export type Activation = "gelu" | "quick_gelu" | "gelu_new" | "gelu_pytorch_tanh" | "silu";

export function activation(g: GraphBuilder, x: Value, act: Activation): Value {
  switch (act) {
    case "gelu":
      return gelu(g, x);
    case "quick_gelu":
      return quickGelu(g, x);
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return geluTanh(g, x);
    case "silu":
      return silu(g, x);
  }
}

/** GEGLU (diffusers): proj to 2*inner, value = first half, gate = second half through exact GELU. */
export function geglu(g: GraphBuilder, x: Value, prefix: string, dim: number, inner: number): Value {
  const h = linear(g, x, prefix, dim, inner * 2); // [B, L, 2*inner]
  const [value, gate] = split(g, h, 2, -1);
  return g.op("Mul", [value, gelu(g, gate)]);
}

/**
 * Multi-head scaled dot-product attention on already projected tensors: q [B, Lq, H*D], k/v [B, Lk, H*D] ->
 * [B, Lq, H*D]. softmax(q k^T * scale + mask) v in fp32; `mask` broadcasts to [B, H, Lq, Lk] (additive).
 */
export function scaledDotProductAttention(
  g: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  o: { heads: number; headDim: number; scale?: number; mask?: Value },
): Value {
  if (!o.mask) {
    // onnxruntime's fused MultiHeadAttention (com.microsoft; CPU and CUDA): unmasked fp32 runs MLAS flash attention
    // on the CPU, so the [B, H, Lq, Lk] score matrix is never materialised (1 GiB per image for SDXL's 4096-token
    // self-attention at 1024², 4 GiB for the VAE's 16384 tokens). Same arithmetic up to the softmax's summation order.
    return g.op("MultiHeadAttention", [q, k, v], { num_heads: o.heads, scale: o.scale ?? 1 / Math.sqrt(o.headDim) }, { domain: "com.microsoft" });
  }
  const heads = (t: Value) => reshape(g, t, [0, 0, o.heads, o.headDim]); // [B, L, H, D]
  const qh = transpose(g, heads(q), [0, 2, 1, 3]); // [B, H, Lq, D]
  const kt = transpose(g, heads(k), [0, 2, 3, 1]); // [B, H, D, Lk]
  const vh = transpose(g, heads(v), [0, 2, 1, 3]); // [B, H, Lk, D]
  let scores = g.op("Mul", [g.op("MatMul", [qh, kt]), g.f32(o.scale ?? 1 / Math.sqrt(o.headDim))]); // [B, H, Lq, Lk]
  if (o.mask) scores = g.op("Add", [scores, o.mask]);
  const probs = g.op("Softmax", [scores], { axis: -1 });
  const out = transpose(g, g.op("MatMul", [probs, vh]), [0, 2, 1, 3]); // [B, Lq, H, D]
  return reshape(g, out, [0, 0, o.heads * o.headDim]);
}

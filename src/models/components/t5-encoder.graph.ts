/**
 * T5EncoderModel (transformers `modeling_t5.py`) as an ONNX graph: token embedding without scaling or absolute
 * positions, pre-RMS-norm blocks of self-attention (no 1/sqrt(d) scaling, an additive relative-position bias
 * computed once from block 0's `relative_attention_bias` and shared by every block) and a (gated) feed-forward,
 * then a final RMS norm. Weight keys are the transformers checkpoint keys (`encoder.block.{i}.layer.0.SelfAttention.q.weight`).
 */
import { EaselError } from "../../core/errors.ts";
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { type Activation, activation, linear, scaledDotProductAttention } from "../../graph/ops/nn.ts";
import { concat, shapeOf, slice, transpose, unsqueeze } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";

export interface T5EncoderConfig {
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  vocabSize: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEps: number;
  /** Feed-forward activation; gated = `wi_0` through the activation times `wi_1` (T5 v1.1 "gated-gelu"). */
  ffActivation: Activation | "relu";
  gated: boolean;
}

function positiveInt(json: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`, {
      details: { file, key },
    });
  }
  return v;
}

const FF_ACTS: Record<string, Activation | "relu"> = { gelu: "gelu", gelu_new: "gelu_new", gelu_pytorch_tanh: "gelu_new", relu: "relu", silu: "silu" };

/** Reads a transformers T5Config (`text_encoder_3/config.json`); `file` names it in errors. */
export function t5EncoderConfigFromJson(json: Record<string, unknown>, file = "config.json"): T5EncoderConfig {
  // feed_forward_proj is "{act}" or "gated-{act}"; gated-gelu means gelu_new (transformers' legacy rule).
  const proj = typeof json.feed_forward_proj === "string" ? json.feed_forward_proj : "relu";
  const gated = proj.startsWith("gated-");
  let actName = gated ? proj.slice("gated-".length) : proj;
  if (proj === "gated-gelu") actName = "gelu_new";
  const act = FF_ACTS[actName];
  if (!act) {
    throw new EaselError("E_NOT_SUPPORTED", `${file}: feed_forward_proj "${proj}" is not supported (relu, gelu, gated-gelu, gated-silu, ...)`, {
      details: { file, key: "feed_forward_proj" },
    });
  }
  const cfg: T5EncoderConfig = {
    dModel: positiveInt(json, "d_model", file),
    dKv: positiveInt(json, "d_kv", file),
    dFf: positiveInt(json, "d_ff", file),
    numLayers: positiveInt(json, "num_layers", file),
    numHeads: positiveInt(json, "num_heads", file),
    vocabSize: positiveInt(json, "vocab_size", file),
    relativeAttentionNumBuckets: positiveInt(json, "relative_attention_num_buckets", file, 32),
    relativeAttentionMaxDistance: positiveInt(json, "relative_attention_max_distance", file, 128),
    layerNormEps: typeof json.layer_norm_epsilon === "number" ? json.layer_norm_epsilon : 1e-6,
    ffActivation: act,
    gated,
  };
  if (json.is_decoder === true) throw new EaselError("E_NOT_SUPPORTED", `${file}: a T5 decoder config is not a text encoder`);
  return cfg;
}

/**
 * T5's bidirectional relative-position bucket for every relative position `k - q` in [-(maxLen-1), maxLen-1]
 * (index = rp + maxLen - 1), computed with float32 arithmetic as torch does: half of the buckets per direction,
 * exact buckets below half of that, logarithmic ones up to max_distance, the last bucket beyond.
 */
export function t5RelativeBuckets(maxLen: number, numBuckets: number, maxDistance: number): number[] {
  const half = Math.floor(numBuckets / 2);
  const maxExact = Math.floor(half / 2);
  const f = Math.fround;
  const logRange = f(Math.log(maxDistance / maxExact));
  const out: number[] = [];
  for (let rp = -(maxLen - 1); rp <= maxLen - 1; rp++) {
    const base = rp > 0 ? half : 0;
    const a = Math.abs(rp);
    if (a < maxExact) {
      out.push(base + a);
      continue;
    }
    const scaled = f(f(f(Math.log(f(a / maxExact))) / logRange) * (half - maxExact));
    out.push(base + Math.min(maxExact + Math.trunc(scaled), half - 1));
  }
  return out;
}

export interface T5EncoderGraphOptions {
  /** Longest sequence the graph accepts (the bucket table covers it); default 512. */
  maxSequenceLength?: number;
  /** Also output `hidden_states` [L+1, B, S, D] (embeddings, each block; the last entry after the final norm). */
  outputHiddenStates?: boolean;
}

/** T5LayerNorm: x * rsqrt(mean(x^2) + eps) * w, no mean subtraction and no bias. x [B, S, D]. */
function rmsNorm(g: GraphBuilder, x: Value, weight: Value, eps: number): Value {
  const variance = g.op("ReduceMean", [g.op("Mul", [x, x])], { axes: [-1], keepdims: 1 }); // [B, S, 1]
  const normed = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [variance, g.f32(eps)])])]);
  return g.op("Mul", [normed, weight]);
}

/**
 * Inputs: `input_ids` int64 [B, S] (S <= maxSequenceLength; SD3 uses 256, padded with 0, no attention mask).
 * Outputs: `last_hidden_state` [B, S, D] (+ `hidden_states` with the option).
 */
export function buildT5EncoderGraph(cfg: T5EncoderConfig, weights: WeightSource, opts: T5EncoderGraphOptions = {}): BuiltGraph {
  const g = new GraphBuilder({ name: "t5_encoder", weights });
  const D = cfg.dModel;
  const inner = cfg.numHeads * cfg.dKv;
  const maxLen = opts.maxSequenceLength ?? 512;
  const ids = g.input("input_ids", "int64", ["batch", "sequence"]);
  const seqLen = slice(g, shapeOf(g, ids), [1], [2], [0]); // [1] = S

  const embedKey = weights.has("shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight";
  let h = g.op("Gather", [g.weight(embedKey, [cfg.vocabSize, D]), ids], { axis: 0 }); // [B, S, D]

  // Relative position bias [1, H, S, S]: bucket(k - q) looked up in a constant table, then the learned bias.
  const table = g.constant("int64", [2 * maxLen - 1], t5RelativeBuckets(maxLen, cfg.relativeAttentionNumBuckets, cfg.relativeAttentionMaxDistance), "t5_buckets");
  const positions = g.op("Range", [g.i64(0), g.op("Squeeze", [seqLen, g.i64([0])]), g.i64(1)]); // [S]
  const rel = g.op("Add", [g.op("Sub", [unsqueeze(g, positions, [0]), unsqueeze(g, positions, [1])]), g.i64(maxLen - 1)]); // [S(q), S(k)]
  const buckets = g.op("Gather", [table, rel], { axis: 0 }); // [S, S]
  const biasTable = g.weight("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", [cfg.relativeAttentionNumBuckets, cfg.numHeads]);
  const bias = unsqueeze(g, transpose(g, g.op("Gather", [biasTable, buckets], { axis: 0 }), [2, 0, 1]), [0]); // [1, H, S, S]

  const hidden: Value[] = [h];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `encoder.block.${l}.layer`;
    const n1 = rmsNorm(g, h, g.weight(`${p}.0.layer_norm.weight`, [D]), cfg.layerNormEps);
    const q = linear(g, n1, `${p}.0.SelfAttention.q`, D, inner, { bias: false });
    const k = linear(g, n1, `${p}.0.SelfAttention.k`, D, inner, { bias: false });
    const v = linear(g, n1, `${p}.0.SelfAttention.v`, D, inner, { bias: false });
    const a = scaledDotProductAttention(g, q, k, v, { heads: cfg.numHeads, headDim: cfg.dKv, scale: 1, mask: bias }); // [B, S, inner]
    h = g.op("Add", [h, linear(g, a, `${p}.0.SelfAttention.o`, inner, D, { bias: false })]);

    const n2 = rmsNorm(g, h, g.weight(`${p}.1.layer_norm.weight`, [D]), cfg.layerNormEps);
    const ff = `${p}.1.DenseReluDense`;
    const act = (x: Value) => (cfg.ffActivation === "relu" ? g.op("Relu", [x]) : activation(g, x, cfg.ffActivation));
    const mid = cfg.gated
      ? g.op("Mul", [act(linear(g, n2, `${ff}.wi_0`, D, cfg.dFf, { bias: false })), linear(g, n2, `${ff}.wi_1`, D, cfg.dFf, { bias: false })])
      : act(linear(g, n2, `${ff}.wi`, D, cfg.dFf, { bias: false })); // [B, S, d_ff]
    h = g.op("Add", [h, linear(g, mid, `${ff}.wo`, cfg.dFf, D, { bias: false })]);
    hidden.push(h);
  }
  const last = rmsNorm(g, h, g.weight("encoder.final_layer_norm.weight", [D]), cfg.layerNormEps);
  hidden[hidden.length - 1] = last;

  g.output(last, "last_hidden_state", "float32", ["batch", "sequence", D]);
  if (opts.outputHiddenStates) {
    const stacked = concat(g, hidden.map((x) => unsqueeze(g, x, [0])), 0);
    g.output(stacked, "hidden_states", "float32", [cfg.numLayers + 1, "batch", "sequence", D]);
  }
  return g.build();
}

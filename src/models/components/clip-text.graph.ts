/**
 * CLIPTextModel / CLIPTextModelWithProjection (transformers `modeling_clip.py`) as an ONNX graph: pre-LN
 * transformer with a causal mask, end-of-text pooling and an optional bias-free `text_projection`.
 * Weight keys are the transformers checkpoint keys (`text_model.encoder.layers.{l}.self_attn.q_proj.weight`, ...).
 */
import { EaselError } from "../../core/errors.ts";
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { type Activation, activation, layerNorm, linear, scaledDotProductAttention } from "../../graph/ops/nn.ts";
import { concat, shapeOf, slice, unsqueeze } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";

export interface ClipTextConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  vocabSize: number;
  maxPositions: number;
  hiddenAct: Activation;
  layerNormEps: number;
  eosTokenId: number;
  /** Set for CLIPTextModelWithProjection: width of `text_projection` (no bias). */
  projectionDim?: number;
}

const ACTS: readonly Activation[] = ["gelu", "quick_gelu", "gelu_new", "gelu_pytorch_tanh"];

function positiveInt(json: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`, {
      details: { file, key },
    });
  }
  return v;
}

/** Reads a transformers CLIPTextConfig (a text encoder folder's `config.json`); `file` names it in errors. */
export function clipTextConfigFromJson(json: Record<string, unknown>, file = "config.json"): ClipTextConfig {
  const arch = Array.isArray(json.architectures) ? (json.architectures as unknown[]) : [];
  const withProjection = arch.includes("CLIPTextModelWithProjection");
  const act = (json.hidden_act ?? "quick_gelu") as Activation;
  if (!ACTS.includes(act)) {
    throw new EaselError("E_NOT_SUPPORTED", `${file}: hidden_act "${String(act)}" is not supported (one of ${ACTS.join(", ")})`, {
      details: { file, key: "hidden_act" },
    });
  }
  const cfg: ClipTextConfig = {
    hiddenSize: positiveInt(json, "hidden_size", file),
    numLayers: positiveInt(json, "num_hidden_layers", file),
    numHeads: positiveInt(json, "num_attention_heads", file),
    intermediateSize: positiveInt(json, "intermediate_size", file),
    vocabSize: positiveInt(json, "vocab_size", file),
    maxPositions: positiveInt(json, "max_position_embeddings", file, 77),
    hiddenAct: act,
    layerNormEps: typeof json.layer_norm_eps === "number" ? json.layer_norm_eps : 1e-5,
    eosTokenId: typeof json.eos_token_id === "number" ? json.eos_token_id : 2,
    projectionDim: withProjection ? positiveInt(json, "projection_dim", file) : undefined,
  };
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numHeads}`);
  }
  return cfg;
}

export interface ClipTextGraphOptions {
  /** Also output `hidden_states` [L+1, B, S, D] (embeddings, then every layer; no final norm). */
  outputHiddenStates?: boolean;
  /** Also output `normed_hidden_states`: final_layer_norm of every entry of hidden_states (diffusers' clip_skip). */
  outputNormedHiddenStates?: boolean;
}

/**
 * Inputs: `input_ids` int64 [B, S] (S <= max positions, 77 for every SD tokenizer).
 * Outputs: `last_hidden_state` [B, S, D] (final LN), `penultimate_hidden_state` [B, S, D] (hidden_states[-2], no
 * final LN: SDXL / SD3 context and clip_skip), `pooler_output` [B, D], and `text_embeds` [B, P] with projection.
 */
export function buildClipTextGraph(cfg: ClipTextConfig, weights: WeightSource, opts: ClipTextGraphOptions = {}): BuiltGraph {
  const g = new GraphBuilder({ name: cfg.projectionDim ? "clip_text_with_projection" : "clip_text", weights });
  const D = cfg.hiddenSize;
  const heads = cfg.numHeads;
  const ids = g.input("input_ids", "int64", ["batch", "sequence"]);
  const seqLen = slice(g, shapeOf(g, ids), [1], [2], [0]); // [1] = S

  const tok = g.op("Gather", [g.weight("text_model.embeddings.token_embedding.weight", [cfg.vocabSize, D]), ids], { axis: 0 }); // [B, S, D]
  const posTable = g.weight("text_model.embeddings.position_embedding.weight", [cfg.maxPositions, D]);
  const pos = slice(g, posTable, [0], seqLen, [0]); // [S, D]
  let h = g.op("Add", [tok, pos]); // [B, S, D]

  // Causal mask, additive: finfo(float32).min above the diagonal, like transformers' _create_4d_causal_attention_mask.
  const M = cfg.maxPositions;
  const maskValues = new Float32Array(M * M);
  for (let i = 0; i < M; i++) for (let j = i + 1; j < M; j++) maskValues[i * M + j] = -3.4028234663852886e38;
  const mask = slice(g, g.f32(maskValues, [M, M]), [0, 0], concat(g, [seqLen, seqLen], 0), [0, 1]); // [S, S]

  const hidden: Value[] = [h];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `text_model.encoder.layers.${l}`;
    const n1 = layerNorm(g, h, `${p}.layer_norm1`, { dim: D, eps: cfg.layerNormEps });
    const q = linear(g, n1, `${p}.self_attn.q_proj`, D, D);
    const k = linear(g, n1, `${p}.self_attn.k_proj`, D, D);
    const v = linear(g, n1, `${p}.self_attn.v_proj`, D, D);
    const a = scaledDotProductAttention(g, q, k, v, { heads, headDim: D / heads, mask });
    h = g.op("Add", [h, linear(g, a, `${p}.self_attn.out_proj`, D, D)]);
    const n2 = layerNorm(g, h, `${p}.layer_norm2`, { dim: D, eps: cfg.layerNormEps });
    const f = linear(g, activation(g, linear(g, n2, `${p}.mlp.fc1`, D, cfg.intermediateSize), cfg.hiddenAct), `${p}.mlp.fc2`, cfg.intermediateSize, D);
    h = g.op("Add", [h, f]);
    hidden.push(h);
  }
  const last = layerNorm(g, h, "text_model.final_layer_norm", { dim: D, eps: cfg.layerNormEps }); // [B, S, D]

  // End-of-text position: transformers takes argmax(ids) when the config's eos_token_id is the legacy 2 (the real
  // SD configs), else the first position holding eos_token_id. ArgMax returns the first maximum.
  const idsF = g.op("Cast", [ids], { to: 1 });
  const key = cfg.eosTokenId === 2 ? idsF : g.op("Cast", [g.op("Equal", [ids, g.i64(cfg.eosTokenId)])], { to: 1 });
  const eosPos = g.op("ArgMax", [key], { axis: 1, keepdims: 1 }); // [B, 1]
  const pooled = g.op("GatherND", [last, eosPos], { batch_dims: 1 }); // [B, D]

  g.output(last, "last_hidden_state", "float32", ["batch", "sequence", D]);
  g.output(hidden[hidden.length - 2], "penultimate_hidden_state", "float32", ["batch", "sequence", D]);
  g.output(pooled, "pooler_output", "float32", ["batch", D]);
  if (cfg.projectionDim) {
    const embeds = linear(g, pooled, "text_projection", D, cfg.projectionDim, { bias: false });
    g.output(embeds, "text_embeds", "float32", ["batch", cfg.projectionDim]);
  }
  if (opts.outputHiddenStates || opts.outputNormedHiddenStates) {
    const stacked = concat(g, hidden.map((x) => unsqueeze(g, x, [0])), 0); // [L+1, B, S, D]
    if (opts.outputHiddenStates) g.output(stacked, "hidden_states", "float32", [cfg.numLayers + 1, "batch", "sequence", D]);
    if (opts.outputNormedHiddenStates) {
      // LayerNorm over the last axis normalises each entry on its own, exactly as applying it per layer.
      const normed = layerNorm(g, stacked, "text_model.final_layer_norm", { dim: D, eps: cfg.layerNormEps });
      g.output(normed, "normed_hidden_states", "float32", [cfg.numLayers + 1, "batch", "sequence", D]);
    }
  }
  return g.build();
}

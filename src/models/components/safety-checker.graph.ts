/**
 * diffusers' StableDiffusionSafetyChecker (pipelines/stable_diffusion/safety_checker.py) as an ONNX graph: a
 * transformers CLIPVisionModel (modeling_clip.py: patch embedding, class token, learned positions, pre-LN encoder
 * without a mask, post-LN on the class token), the bias-free `visual_projection`, and the cosine similarities of the
 * image embedding with the 3 `special_care_embeds` and the 17 `concept_embeds` (`cosine_distance`: both sides L2
 * normalised with eps 1e-12, then a matrix product). The thresholds and the 0.01 adjustment are applied to these
 * outputs in safety-checker.ts, exactly as diffusers' forward does. Weight keys are the checkpoint's verbatim
 * (`vision_model.vision_model.encoder.layers.{l}...`, `visual_projection.weight`, `concept_embeds`, ...).
 */
import { EaselError } from "../../core/errors.ts";
import { type BuiltGraph, GraphBuilder, type Value } from "../../graph/builder.ts";
import { type Activation, activation, conv2d, layerNorm, linear, scaledDotProductAttention } from "../../graph/ops/nn.ts";
import { concat, reshape, slice, squeeze, transpose } from "../../graph/ops/shape.ts";
import type { WeightSource } from "../../graph/weights.ts";

export interface SafetyCheckerConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  hiddenAct: Activation;
  layerNormEps: number;
  projectionDim: number;
  /** diffusers fixes these at 17 and 3. */
  numConcepts: number;
  numSpecialCare: number;
}

const ACTS: readonly Activation[] = ["gelu", "quick_gelu", "gelu_new", "gelu_pytorch_tanh"];

/** transformers' CLIPVisionConfig defaults, for keys a saved config leaves out. */
const VISION_DEFAULTS = { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3, image_size: 224, patch_size: 32, hidden_act: "quick_gelu", layer_norm_eps: 1e-5 };

function positiveInt(v: unknown, key: string, file: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`, { details: { file, key } });
  }
  return v;
}

/** Reads a safety checker's CLIPConfig (`safety_checker/config.json`: `projection_dim` and `vision_config`). */
export function safetyCheckerConfigFromJson(json: Record<string, unknown>, file = "config.json"): SafetyCheckerConfig {
  // Configs saved by older transformers keep the vision settings under vision_config_dict.
  const vision = { ...VISION_DEFAULTS, ...((json.vision_config_dict ?? {}) as Record<string, unknown>), ...((json.vision_config ?? {}) as Record<string, unknown>) };
  const act = vision.hidden_act as Activation;
  if (!ACTS.includes(act)) {
    throw new EaselError("E_NOT_SUPPORTED", `${file}: vision_config.hidden_act "${String(act)}" is not supported (one of ${ACTS.join(", ")})`);
  }
  const cfg: SafetyCheckerConfig = {
    hiddenSize: positiveInt(vision.hidden_size, "vision_config.hidden_size", file),
    numLayers: positiveInt(vision.num_hidden_layers, "vision_config.num_hidden_layers", file),
    numHeads: positiveInt(vision.num_attention_heads, "vision_config.num_attention_heads", file),
    intermediateSize: positiveInt(vision.intermediate_size, "vision_config.intermediate_size", file),
    imageSize: positiveInt(vision.image_size, "vision_config.image_size", file),
    patchSize: positiveInt(vision.patch_size, "vision_config.patch_size", file),
    numChannels: positiveInt(vision.num_channels, "vision_config.num_channels", file),
    hiddenAct: act,
    layerNormEps: typeof vision.layer_norm_eps === "number" ? vision.layer_norm_eps : 1e-5,
    projectionDim: positiveInt(json.projection_dim ?? 512, "projection_dim", file),
    numConcepts: 17,
    numSpecialCare: 3,
  };
  if (cfg.hiddenSize % cfg.numHeads !== 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numHeads}`);
  }
  if (cfg.imageSize % cfg.patchSize !== 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`);
  }
  return cfg;
}

/** Rows of `x` [N, P] divided by max(||row||, 1e-12), like torch.nn.functional.normalize. */
function l2Normalize(g: GraphBuilder, x: Value): Value {
  const norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [x, x]), g.i64([-1])], { keepdims: 1 })]);
  return g.op("Div", [x, g.op("Max", [norm, g.f32([1e-12])])]);
}

/**
 * Input: `pixel_values` float32 [B, C, S, S] (CLIPImageProcessor output, S = image_size).
 * Outputs: `image_embeds` [B, P], `special_cos_dist` [B, 3], `cos_dist` [B, 17], and the checkpoint's thresholds
 * `special_thresholds` [3] (special_care_embeds_weights) and `concept_thresholds` [17] (concept_embeds_weights).
 */
export function buildSafetyCheckerGraph(cfg: SafetyCheckerConfig, weights: WeightSource): BuiltGraph {
  const g = new GraphBuilder({ name: "safety_checker", weights });
  const D = cfg.hiddenSize;
  const grid = cfg.imageSize / cfg.patchSize;
  const tokens = grid * grid + 1;
  const pre = "vision_model.vision_model";
  const pixels = g.input("pixel_values", "float32", ["batch", cfg.numChannels, cfg.imageSize, cfg.imageSize]);

  const patches = conv2d(g, pixels, `${pre}.embeddings.patch_embedding`, { inChannels: cfg.numChannels, outChannels: D, kernel: cfg.patchSize, stride: cfg.patchSize, bias: false }); // [B, D, g, g]
  const seq = transpose(g, reshape(g, patches, [0, D, grid * grid]), [0, 2, 1]); // [B, g*g, D]
  // The class token, one per batch entry: [D] broadcast to [B, 1, D] through a zero slice of the sequence.
  const zeros = g.op("Mul", [slice(g, seq, [0], [1], [1]), g.f32([0])]); // [B, 1, D]
  const cls = g.op("Add", [zeros, g.weight(`${pre}.embeddings.class_embedding`, [D])]); // [B, 1, D]
  let h = g.op("Add", [concat(g, [cls, seq], 1), g.weight(`${pre}.embeddings.position_embedding.weight`, [tokens, D])]); // [B, T, D]
  h = layerNorm(g, h, `${pre}.pre_layrnorm`, { dim: D, eps: cfg.layerNormEps });

  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `${pre}.encoder.layers.${l}`;
    const n1 = layerNorm(g, h, `${p}.layer_norm1`, { dim: D, eps: cfg.layerNormEps });
    const q = linear(g, n1, `${p}.self_attn.q_proj`, D, D);
    const k = linear(g, n1, `${p}.self_attn.k_proj`, D, D);
    const v = linear(g, n1, `${p}.self_attn.v_proj`, D, D);
    const a = scaledDotProductAttention(g, q, k, v, { heads: cfg.numHeads, headDim: D / cfg.numHeads });
    h = g.op("Add", [h, linear(g, a, `${p}.self_attn.out_proj`, D, D)]);
    const n2 = layerNorm(g, h, `${p}.layer_norm2`, { dim: D, eps: cfg.layerNormEps });
    const f = linear(g, activation(g, linear(g, n2, `${p}.mlp.fc1`, D, cfg.intermediateSize), cfg.hiddenAct), `${p}.mlp.fc2`, cfg.intermediateSize, D);
    h = g.op("Add", [h, f]);
  }
  const pooled = layerNorm(g, squeeze(g, slice(g, h, [0], [1], [1]), [1]), `${pre}.post_layernorm`, { dim: D, eps: cfg.layerNormEps }); // [B, D]
  const embeds = linear(g, pooled, "visual_projection", D, cfg.projectionDim, { bias: false }); // [B, P]

  const img = l2Normalize(g, embeds);
  const special = l2Normalize(g, g.weight("special_care_embeds", [cfg.numSpecialCare, cfg.projectionDim]));
  const concepts = l2Normalize(g, g.weight("concept_embeds", [cfg.numConcepts, cfg.projectionDim]));
  g.output(embeds, "image_embeds", "float32", ["batch", cfg.projectionDim]);
  g.output(g.op("MatMul", [img, transpose(g, special, [1, 0])]), "special_cos_dist", "float32", ["batch", cfg.numSpecialCare]);
  g.output(g.op("MatMul", [img, transpose(g, concepts, [1, 0])]), "cos_dist", "float32", ["batch", cfg.numConcepts]);
  // The thresholds are read by safety-checker.ts from the same file; recording them here keeps them in the
  // checkpoint the tiny-checkpoint writer produces.
  g.output(g.op("Identity", [g.weight("special_care_embeds_weights", [cfg.numSpecialCare])]), "special_thresholds", "float32", [cfg.numSpecialCare]);
  g.output(g.op("Identity", [g.weight("concept_embeds_weights", [cfg.numConcepts])]), "concept_thresholds", "float32", [cfg.numConcepts]);
  return g.build();
}

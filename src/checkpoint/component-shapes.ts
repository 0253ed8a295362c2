/**
 * The tensors (diffusers / transformers names and shapes) a component config describes, for the classes single files
 * convert to: diffusers UNet2DConditionModel (down/up blocks with and without cross-attention, the SDXL text_time
 * embedding), AutoencoderKL, SD3Transformer2DModel; transformers CLIPTextModel(WithProjection) and T5EncoderModel.
 * Written from the modules' constructors (diffusers unets/unet_2d_condition.py, unet_2d_blocks.py,
 * transformers/transformer_2d.py, autoencoders/vae.py, transformers/transformer_sd3.py; transformers
 * models/clip/modeling_clip.py, models/t5/modeling_t5.py) with diffusers' defaults, so a converted file can be checked
 * against the configs it is given before anything is written.
 */

type Json = Record<string, unknown>;

export interface ExpectedTensors {
  shapes: Map<string, number[]>;
  /** Names that may be absent (tied or derived weights); at least one of each group must be present. */
  optional: string[][];
}

function num(c: Json, key: string, fallback?: number): number {
  const v = c[key] ?? fallback;
  if (typeof v !== "number") throw new Error(`config ${key} is missing`);
  return v;
}

function perLevel(c: Json, key: string, n: number, fallback: number): number[] {
  const v = c[key] ?? fallback;
  return Array.isArray(v) ? (v as number[]) : new Array(n).fill(v as number);
}

class Shapes {
  readonly shapes = new Map<string, number[]>();
  readonly optional: string[][] = [];
  put(name: string, shape: number[]): void {
    this.shapes.set(name, shape);
  }
  /** Linear layer: weight [out, in], bias [out] unless `bias` is false. */
  linear(p: string, inF: number, outF: number, bias = true): void {
    this.put(`${p}.weight`, [outF, inF]);
    if (bias) this.put(`${p}.bias`, [outF]);
  }
  conv(p: string, inC: number, outC: number, k: number): void {
    this.put(`${p}.weight`, [outC, inC, k, k]);
    this.put(`${p}.bias`, [outC]);
  }
  norm(p: string, c: number): void {
    this.put(`${p}.weight`, [c]);
    this.put(`${p}.bias`, [c]);
  }
  done(): ExpectedTensors {
    return { shapes: this.shapes, optional: this.optional };
  }
}

/** diffusers ResnetBlock2D (temb: the time embedding width, undefined in the VAE). */
function resnet(s: Shapes, p: string, inC: number, outC: number, temb?: number): void {
  s.norm(`${p}.norm1`, inC);
  s.conv(`${p}.conv1`, inC, outC, 3);
  if (temb !== undefined) s.linear(`${p}.time_emb_proj`, temb, outC);
  s.norm(`${p}.norm2`, outC);
  s.conv(`${p}.conv2`, outC, outC, 3);
  if (inC !== outC) s.conv(`${p}.conv_shortcut`, inC, outC, 1);
}

/** diffusers Transformer2DModel over `c` channels (inner width = c) with `layers` BasicTransformerBlocks. */
function transformer2d(s: Shapes, p: string, c: number, layers: number, cross: number, linearProjection: boolean): void {
  s.norm(`${p}.norm`, c);
  const proj = (name: string) => (linearProjection ? s.linear(`${p}.${name}`, c, c) : s.conv(`${p}.${name}`, c, c, 1));
  proj("proj_in");
  for (let k = 0; k < layers; k++) {
    const b = `${p}.transformer_blocks.${k}`;
    for (const n of ["norm1", "norm2", "norm3"]) s.norm(`${b}.${n}`, c);
    for (const [a, ctx] of [
      ["attn1", c],
      ["attn2", cross],
    ] as const) {
      s.linear(`${b}.${a}.to_q`, c, c, false);
      s.linear(`${b}.${a}.to_k`, ctx, c, false);
      s.linear(`${b}.${a}.to_v`, ctx, c, false);
      s.linear(`${b}.${a}.to_out.0`, c, c);
    }
    s.linear(`${b}.ff.net.0.proj`, c, 8 * c); // GEGLU: two halves of 4c
    s.linear(`${b}.ff.net.2`, 4 * c, c);
  }
  proj("proj_out");
}

function unet2dCondition(c: Json): ExpectedTensors {
  const s = new Shapes();
  const boc = c.block_out_channels as number[];
  const n = boc.length;
  const lpb = perLevel(c, "layers_per_block", n, 2);
  const tl = perLevel(c, "transformer_layers_per_block", n, 1);
  const cross = perLevel(c, "cross_attention_dim", n, 1280);
  const lin = c.use_linear_projection === true;
  const down = c.down_block_types as string[];
  const up = c.up_block_types as string[];
  const temb = c.time_embedding_dim == null ? boc[0] * 4 : num(c, "time_embedding_dim");
  s.conv("conv_in", num(c, "in_channels", 4), boc[0], 3);
  s.linear("time_embedding.linear_1", boc[0], temb);
  s.linear("time_embedding.linear_2", temb, temb);
  if (c.addition_embed_type === "text_time") {
    s.linear("add_embedding.linear_1", num(c, "projection_class_embeddings_input_dim"), temb);
    s.linear("add_embedding.linear_2", temb, temb);
  }
  let prev = boc[0];
  for (let i = 0; i < n; i++) {
    const out = boc[i];
    for (let j = 0; j < lpb[i]; j++) {
      resnet(s, `down_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out, temb);
      if (down[i].startsWith("CrossAttn")) transformer2d(s, `down_blocks.${i}.attentions.${j}`, out, tl[i], cross[i], lin);
    }
    if (i < n - 1) s.conv(`down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
    prev = out;
  }
  if (c.mid_block_type !== null) {
    const m = boc[n - 1];
    resnet(s, "mid_block.resnets.0", m, m, temb);
    transformer2d(s, "mid_block.attentions.0", m, tl[n - 1], cross[n - 1], lin);
    resnet(s, "mid_block.resnets.1", m, m, temb);
  }
  const rboc = [...boc].reverse();
  const rl = [...lpb].reverse();
  const rtl = [...tl].reverse();
  const rcross = [...cross].reverse();
  prev = rboc[0];
  for (let i = 0; i < n; i++) {
    const out = rboc[i];
    const input = rboc[Math.min(i + 1, n - 1)];
    for (let j = 0; j <= rl[i]; j++) {
      const skip = j === rl[i] ? input : out;
      resnet(s, `up_blocks.${i}.resnets.${j}`, (j === 0 ? prev : out) + skip, out, temb);
      if (up[i].startsWith("CrossAttn")) transformer2d(s, `up_blocks.${i}.attentions.${j}`, out, rtl[i], rcross[i], lin);
    }
    if (i < n - 1) s.conv(`up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
    prev = out;
  }
  s.norm("conv_norm_out", boc[0]);
  s.conv("conv_out", boc[0], num(c, "out_channels", 4), 3);
  return s.done();
}

function autoencoderKl(c: Json): ExpectedTensors {
  const s = new Shapes();
  const boc = c.block_out_channels as number[];
  const n = boc.length;
  const lpb = num(c, "layers_per_block", 1);
  const latent = num(c, "latent_channels", 4);
  const attention = c.mid_block_add_attention !== false;
  const mid = (p: string) => {
    const m = boc[n - 1];
    resnet(s, `${p}.mid_block.resnets.0`, m, m);
    if (attention) {
      s.norm(`${p}.mid_block.attentions.0.group_norm`, m);
      for (const q of ["to_q", "to_k", "to_v", "to_out.0"]) s.linear(`${p}.mid_block.attentions.0.${q}`, m, m);
    }
    resnet(s, `${p}.mid_block.resnets.1`, m, m);
  };
  s.conv("encoder.conv_in", num(c, "in_channels", 3), boc[0], 3);
  let prev = boc[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < lpb; j++) resnet(s, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? prev : boc[i], boc[i]);
    if (i < n - 1) s.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, boc[i], boc[i], 3);
    prev = boc[i];
  }
  mid("encoder");
  s.norm("encoder.conv_norm_out", boc[n - 1]);
  s.conv("encoder.conv_out", boc[n - 1], 2 * latent, 3);
  if (c.use_quant_conv !== false) s.conv("quant_conv", 2 * latent, 2 * latent, 1);
  if (c.use_post_quant_conv !== false) s.conv("post_quant_conv", latent, latent, 1);
  s.conv("decoder.conv_in", latent, boc[n - 1], 3);
  mid("decoder");
  const rboc = [...boc].reverse();
  prev = rboc[0];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= lpb; j++) resnet(s, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : rboc[i], rboc[i]);
    if (i < n - 1) s.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, rboc[i], rboc[i], 3);
    prev = rboc[i];
  }
  s.norm("decoder.conv_norm_out", boc[0]);
  s.conv("decoder.conv_out", boc[0], num(c, "out_channels", 3), 3);
  return s.done();
}

function clipText(c: Json, projection: boolean): ExpectedTensors {
  const s = new Shapes();
  const h = num(c, "hidden_size");
  const inner = num(c, "intermediate_size");
  s.put("text_model.embeddings.token_embedding.weight", [num(c, "vocab_size"), h]);
  s.put("text_model.embeddings.position_embedding.weight", [num(c, "max_position_embeddings"), h]);
  for (let l = 0; l < num(c, "num_hidden_layers"); l++) {
    const p = `text_model.encoder.layers.${l}`;
    for (const q of ["q_proj", "k_proj", "v_proj", "out_proj"]) s.linear(`${p}.self_attn.${q}`, h, h);
    s.norm(`${p}.layer_norm1`, h);
    s.linear(`${p}.mlp.fc1`, h, inner);
    s.linear(`${p}.mlp.fc2`, inner, h);
    s.norm(`${p}.layer_norm2`, h);
  }
  s.norm("text_model.final_layer_norm", h);
  if (projection) s.linear("text_projection", h, num(c, "projection_dim"), false);
  return s.done();
}

function t5Encoder(c: Json): ExpectedTensors {
  const s = new Shapes();
  const d = num(c, "d_model");
  const inner = num(c, "num_heads") * num(c, "d_kv");
  const ff = num(c, "d_ff");
  const gated = String(c.feed_forward_proj ?? "relu").startsWith("gated-");
  // Tied: transformers saves the shared embedding, and sometimes the encoder's copy of it.
  s.put("shared.weight", [num(c, "vocab_size"), d]);
  s.put("encoder.embed_tokens.weight", [num(c, "vocab_size"), d]);
  s.optional.push(["shared.weight", "encoder.embed_tokens.weight"]);
  for (let l = 0; l < num(c, "num_layers"); l++) {
    const p = `encoder.block.${l}.layer`;
    for (const q of ["q", "k", "v"]) s.linear(`${p}.0.SelfAttention.${q}`, d, inner, false);
    s.linear(`${p}.0.SelfAttention.o`, inner, d, false);
    if (l === 0) s.put(`${p}.0.SelfAttention.relative_attention_bias.weight`, [num(c, "relative_attention_num_buckets", 32), num(c, "num_heads")]);
    s.put(`${p}.0.layer_norm.weight`, [d]);
    for (const wi of gated ? ["wi_0", "wi_1"] : ["wi"]) s.linear(`${p}.1.DenseReluDense.${wi}`, d, ff, false);
    s.linear(`${p}.1.DenseReluDense.wo`, ff, d, false);
    s.put(`${p}.1.layer_norm.weight`, [d]);
  }
  s.put("encoder.final_layer_norm.weight", [d]);
  return s.done();
}

function sd3Transformer(c: Json): ExpectedTensors {
  const s = new Shapes();
  const headDim = num(c, "attention_head_dim", 64);
  const d = num(c, "num_attention_heads", 18) * headDim;
  const p = num(c, "patch_size", 2);
  const m = num(c, "pos_embed_max_size");
  const layers = num(c, "num_layers", 18);
  const dual = new Set((c.dual_attention_layers as number[] | undefined) ?? []);
  const qk = c.qk_norm === "rms_norm";
  s.put("pos_embed.pos_embed", [1, m * m, d]);
  s.put("pos_embed.proj.weight", [d, num(c, "in_channels", 16), p, p]);
  s.put("pos_embed.proj.bias", [d]);
  s.linear("time_text_embed.timestep_embedder.linear_1", 256, d);
  s.linear("time_text_embed.timestep_embedder.linear_2", d, d);
  s.linear("time_text_embed.text_embedder.linear_1", num(c, "pooled_projection_dim", 2048), d);
  s.linear("time_text_embed.text_embedder.linear_2", d, d);
  s.linear("context_embedder", num(c, "joint_attention_dim", 4096), num(c, "caption_projection_dim", 1152));
  const ffn = (b: string) => {
    s.linear(`${b}.net.0.proj`, d, 4 * d);
    s.linear(`${b}.net.2`, 4 * d, d);
  };
  for (let i = 0; i < layers; i++) {
    const b = `transformer_blocks.${i}`;
    const last = i === layers - 1;
    s.linear(`${b}.norm1.linear`, d, (dual.has(i) ? 9 : 6) * d);
    s.linear(`${b}.norm1_context.linear`, d, (last ? 2 : 6) * d);
    for (const q of ["to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0"]) s.linear(`${b}.attn.${q}`, d, d);
    if (!last) s.linear(`${b}.attn.to_add_out`, d, d);
    if (qk) for (const q of ["norm_q", "norm_k", "norm_added_q", "norm_added_k"]) s.put(`${b}.attn.${q}.weight`, [headDim]);
    if (dual.has(i)) {
      for (const q of ["to_q", "to_k", "to_v", "to_out.0"]) s.linear(`${b}.attn2.${q}`, d, d);
      if (qk) for (const q of ["norm_q", "norm_k"]) s.put(`${b}.attn2.${q}.weight`, [headDim]);
    }
    ffn(`${b}.ff`);
    if (!last) ffn(`${b}.ff_context`);
  }
  s.linear("norm_out.linear", d, 2 * d);
  s.linear("proj_out", d, p * p * num(c, "out_channels", 16));
  return s.done();
}

/**
 * The tensors of a component of class `className` (model_index.json's name) built from `config`; undefined for a
 * class this module does not know (nothing is checked then). Throws when the config lacks a size it needs.
 */
export function expectedTensors(className: string, config: Json): ExpectedTensors | undefined {
  switch (className) {
    case "UNet2DConditionModel":
      return unet2dCondition(config);
    case "AutoencoderKL":
      return autoencoderKl(config);
    case "CLIPTextModel":
      return clipText(config, false);
    case "CLIPTextModelWithProjection":
      return clipText(config, true);
    case "T5EncoderModel":
      return t5Encoder(config);
    case "SD3Transformer2DModel":
      return sd3Transformer(config);
    default:
      return undefined;
  }
}

/**
 * A single-file checkpoint made from a tiny diffusers checkpoint by the inverse of diffusers' conversion, written here
 * from the published original layouts: CompVis/SGM UNet and VAE key names, CLIP under `cond_stage_model.transformer.` /
 * `conditioner.embedders.0.transformer.`, OpenCLIP under `conditioner.embedders.1.model.` with fused q/k/v and a
 * transposed text projection; for SD3, Stability's MMDiT under `model.diffusion_model.` (joint_blocks with fused qkv,
 * (shift, scale) modulations where diffusers has (scale, shift)) and the text encoders in transformers' layout under
 * `text_encoders.{clip_l,clip_g,t5xxl}.transformer.`. Tests convert it back and compare.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { findComponentWeightFiles, readSafetensorsHeader, readTensorBytes, type TensorEntry, writeSafetensors } from "../../src/graph/safetensors.ts";

export type Tensor = { name: string; dtype: TensorEntry["dtype"]; shape: number[]; data: Uint8Array };

const toLdmResnet = (s: string) =>
  s
    .replace("norm1", "in_layers.0")
    .replace("conv1", "in_layers.2")
    .replace("norm2", "out_layers.0")
    .replace("conv2", "out_layers.3")
    .replace("time_emb_proj", "emb_layers.1")
    .replace("conv_shortcut", "skip_connection");

/** diffusers UNet key -> original key (without model.diffusion_model.). */
function unetToLdm(k: string, perBlock: number, upHasAttention: (b: number) => boolean): string {
  let m: RegExpExecArray | null;
  if ((m = /^conv_in\.(.+)$/.exec(k))) return `input_blocks.0.0.${m[1]}`;
  if ((m = /^time_embedding\.linear_(1|2)\.(.+)$/.exec(k))) return `time_embed.${m[1] === "1" ? 0 : 2}.${m[2]}`;
  if ((m = /^add_embedding\.linear_(1|2)\.(.+)$/.exec(k))) return `label_emb.0.${m[1] === "1" ? 0 : 2}.${m[2]}`;
  if ((m = /^conv_norm_out\.(.+)$/.exec(k))) return `out.0.${m[1]}`;
  if ((m = /^conv_out\.(.+)$/.exec(k))) return `out.2.${m[1]}`;
  if ((m = /^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return `input_blocks.${1 + Number(m[1]) * perBlock + Number(m[2])}.0.${toLdmResnet(m[3])}`;
  if ((m = /^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/.exec(k))) return `input_blocks.${1 + Number(m[1]) * perBlock + Number(m[2])}.1.${m[3]}`;
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(k))) return `input_blocks.${1 + Number(m[1]) * perBlock + perBlock - 1}.0.op.${m[2]}`;
  if ((m = /^mid_block\.resnets\.(0|1)\.(.+)$/.exec(k))) return `middle_block.${m[1] === "0" ? 0 : 2}.${toLdmResnet(m[2])}`;
  if ((m = /^mid_block\.attentions\.0\.(.+)$/.exec(k))) return `middle_block.1.${m[1]}`;
  if ((m = /^up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return `output_blocks.${Number(m[1]) * perBlock + Number(m[2])}.0.${toLdmResnet(m[3])}`;
  if ((m = /^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/.exec(k))) return `output_blocks.${Number(m[1]) * perBlock + Number(m[2])}.1.${m[3]}`;
  if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(k))) {
    const b = Number(m[1]);
    return `output_blocks.${b * perBlock + perBlock - 1}.${upHasAttention(b) ? 2 : 1}.conv.${m[2]}`;
  }
  throw new Error(`no original name for UNet key ${k}`);
}

const VAE_ATTN: Record<string, string> = { group_norm: "norm", to_q: "q", to_k: "k", to_v: "v", "to_out.0": "proj_out" };

/** diffusers VAE key -> original key (without first_stage_model.); `blocks` = number of resolution levels. */
function vaeToLdm(k: string, blocks: number): string {
  let m: RegExpExecArray | null;
  const sc = (s: string) => s.replace("conv_shortcut", "nin_shortcut");
  if ((m = /^(encoder|decoder)\.conv_norm_out\.(.+)$/.exec(k))) return `${m[1]}.norm_out.${m[2]}`;
  if ((m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return `encoder.down.${m[1]}.block.${m[2]}.${sc(m[3])}`;
  if ((m = /^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(k))) return `encoder.down.${m[1]}.downsample.conv.${m[2]}`;
  if ((m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return `decoder.up.${blocks - 1 - Number(m[1])}.block.${m[2]}.${sc(m[3])}`;
  if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(k))) return `decoder.up.${blocks - 1 - Number(m[1])}.upsample.conv.${m[2]}`;
  if ((m = /^(encoder|decoder)\.mid_block\.resnets\.(0|1)\.(.+)$/.exec(k))) return `${m[1]}.mid.block_${Number(m[2]) + 1}.${sc(m[3])}`;
  if ((m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.+)$/.exec(k))) return `${m[1]}.mid.attn_1.${VAE_ATTN[m[2]]}.${m[3]}`;
  return k; // conv_in, conv_out, quant_conv, post_quant_conv keep their names
}

export function tensorsOf(dir: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const f of findComponentWeightFiles(dir).files) {
    for (const e of readSafetensorsHeader(f).entries) out.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) });
  }
  return out;
}

function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const size = t.data.length / (r * c);
  const data = new Uint8Array(t.data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data.set(t.data.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
  return { ...t, shape: [c, r], data };
}

/**
 * transformers' CLIPTextModel(WithProjection) tensors in OpenCLIP's layout under `p`: fused q/k/v, resblocks, ln_final,
 * the projection transposed; `extraLayer` adds one more resblock past the config's layers (SD2 files hold 24 where
 * diffusers' config, which takes the penultimate layer, has 23) and `projection` a text projection of that width.
 */
function openClipTensors(te: Map<string, Tensor>, p: string, opts: { extraLayer?: boolean; projection?: boolean } = {}): Tensor[] {
  const out: Tensor[] = [];
  const fused = new Map<string, Tensor[]>();
  for (const t of te.values()) {
    let m: RegExpExecArray | null;
    if ((m = /^text_model\.encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)$/.exec(t.name))) {
      const key = `${p}transformer.resblocks.${m[1]}.attn.in_proj_${m[3]}`;
      fused.set(key, [...(fused.get(key) ?? []), t]);
      continue;
    }
    let name: string;
    if (t.name === "text_projection.weight") {
      out.push({ ...transpose(t), name: `${p}text_projection` });
      continue;
    }
    if (t.name === "text_model.embeddings.position_embedding.weight") name = "positional_embedding";
    else if (t.name === "text_model.embeddings.token_embedding.weight") name = "token_embedding.weight";
    else if ((m = /^text_model\.final_layer_norm\.(.+)$/.exec(t.name))) name = `ln_final.${m[1]}`;
    else if ((m = /^text_model\.encoder\.layers\.(\d+)\.(.+)$/.exec(t.name))) {
      const rest = m[2].replace("layer_norm1", "ln_1").replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj").replace("self_attn.out_proj", "attn.out_proj");
      name = `transformer.resblocks.${m[1]}.${rest}`;
    } else throw new Error(`no OpenCLIP name for ${t.name}`);
    out.push({ ...t, name: `${p}${name}` });
  }
  for (const [name, parts] of fused) {
    const order = ["q_proj", "k_proj", "v_proj"].map((q) => parts.find((t) => t.name.includes(`.${q}.`))!);
    const data = new Uint8Array(order.reduce((a, t) => a + t.data.length, 0));
    let at = 0;
    for (const t of order) {
      data.set(t.data, at);
      at += t.data.length;
    }
    out.push({ name, dtype: order[0].dtype, shape: [order[0].shape[0] * 3, ...order[0].shape.slice(1)], data });
  }
  if (opts.extraLayer) {
    const last = Math.max(...[...te.keys()].flatMap((k) => /^text_model\.encoder\.layers\.(\d+)\./.exec(k)?.[1] ?? []).map(Number));
    const prefix = `${p}transformer.resblocks.0.`;
    for (const t of out.filter((x) => x.name.startsWith(prefix))) out.push({ ...t, name: `${p}transformer.resblocks.${last + 1}.${t.name.slice(prefix.length)}` });
  }
  if (opts.projection) {
    const width = te.get("text_model.final_layer_norm.weight")!.shape[0];
    out.push({ name: `${p}text_projection`, dtype: "F32", shape: [width, width], data: new Uint8Array(width * width * 4) });
  }
  out.push({ name: `${p}logit_scale`, dtype: "F32", shape: [], data: new Uint8Array(new Float32Array([4.6]).buffer) });
  return out;
}

/** Rows of `parts` stacked along the first axis (fused q/k/v). */
function stackRows(name: string, parts: Tensor[]): Tensor {
  const data = new Uint8Array(parts.reduce((a, t) => a + t.data.length, 0));
  let at = 0;
  for (const t of parts) {
    data.set(t.data, at);
    at += t.data.length;
  }
  return { name, dtype: parts[0].dtype, shape: [parts.reduce((a, t) => a + t.shape[0], 0), ...parts[0].shape.slice(1)], data };
}

/** The two halves of the first axis swapped: diffusers' (scale, shift) <-> the original (shift, scale). */
function swapHalves(t: Tensor, name: string): Tensor {
  const half = t.data.length / 2;
  const data = new Uint8Array(t.data.length);
  data.set(t.data.subarray(half), 0);
  data.set(t.data.subarray(0, half), half);
  return { ...t, name, data };
}

const MMDIT_FIXED: Record<string, string> = {
  "pos_embed.pos_embed": "pos_embed",
  "pos_embed.proj.weight": "x_embedder.proj.weight",
  "pos_embed.proj.bias": "x_embedder.proj.bias",
  "time_text_embed.timestep_embedder.linear_1.weight": "t_embedder.mlp.0.weight",
  "time_text_embed.timestep_embedder.linear_1.bias": "t_embedder.mlp.0.bias",
  "time_text_embed.timestep_embedder.linear_2.weight": "t_embedder.mlp.2.weight",
  "time_text_embed.timestep_embedder.linear_2.bias": "t_embedder.mlp.2.bias",
  "time_text_embed.text_embedder.linear_1.weight": "y_embedder.mlp.0.weight",
  "time_text_embed.text_embedder.linear_1.bias": "y_embedder.mlp.0.bias",
  "time_text_embed.text_embedder.linear_2.weight": "y_embedder.mlp.2.weight",
  "time_text_embed.text_embedder.linear_2.bias": "y_embedder.mlp.2.bias",
  "context_embedder.weight": "context_embedder.weight",
  "context_embedder.bias": "context_embedder.bias",
  "proj_out.weight": "final_layer.linear.weight",
  "proj_out.bias": "final_layer.linear.bias",
};

/** SD3Transformer2DModel tensors in Stability's MMDiT layout (without model.diffusion_model.). */
function mmditTensors(tr: Map<string, Tensor>, layers: number): Tensor[] {
  const out: Tensor[] = [];
  const fused = new Map<string, Map<string, Tensor>>();
  const fuse = (name: string, part: string, t: Tensor) => fused.set(name, (fused.get(name) ?? new Map()).set(part, t));
  for (const t of tr.values()) {
    if (MMDIT_FIXED[t.name]) {
      out.push({ ...t, name: MMDIT_FIXED[t.name] });
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^norm_out\.linear\.(weight|bias)$/.exec(t.name))) {
      out.push(swapHalves(t, `final_layer.adaLN_modulation.1.${m[1]}`));
      continue;
    }
    m = /^transformer_blocks\.(\d+)\.(.+)$/.exec(t.name);
    if (!m) throw new Error(`no MMDiT name for ${t.name}`);
    const j = `joint_blocks.${m[1]}`;
    const last = Number(m[1]) === layers - 1;
    const rest = m[2];
    let r: RegExpExecArray | null;
    if ((r = /^attn\.to_(q|k|v)\.(weight|bias)$/.exec(rest))) fuse(`${j}.x_block.attn.qkv.${r[2]}`, r[1], t);
    else if ((r = /^attn\.add_(q|k|v)_proj\.(weight|bias)$/.exec(rest))) fuse(`${j}.context_block.attn.qkv.${r[2]}`, r[1], t);
    else if ((r = /^attn2\.to_(q|k|v)\.(weight|bias)$/.exec(rest))) fuse(`${j}.x_block.attn2.qkv.${r[2]}`, r[1], t);
    else if ((r = /^(attn|attn2)\.norm_(q|k)\.weight$/.exec(rest))) out.push({ ...t, name: `${j}.x_block.${r[1]}.ln_${r[2]}.weight` });
    else if ((r = /^attn\.norm_added_(q|k)\.weight$/.exec(rest))) out.push({ ...t, name: `${j}.context_block.attn.ln_${r[1]}.weight` });
    else if ((r = /^(attn|attn2)\.to_out\.0\.(weight|bias)$/.exec(rest))) out.push({ ...t, name: `${j}.x_block.${r[1]}.proj.${r[2]}` });
    else if ((r = /^attn\.to_add_out\.(weight|bias)$/.exec(rest))) out.push({ ...t, name: `${j}.context_block.attn.proj.${r[1]}` });
    else if ((r = /^norm1\.linear\.(weight|bias)$/.exec(rest))) out.push({ ...t, name: `${j}.x_block.adaLN_modulation.1.${r[1]}` });
    else if ((r = /^norm1_context\.linear\.(weight|bias)$/.exec(rest))) {
      const name = `${j}.context_block.adaLN_modulation.1.${r[1]}`;
      out.push(last ? swapHalves(t, name) : { ...t, name });
    } else if ((r = /^(ff|ff_context)\.net\.(0\.proj|2)\.(weight|bias)$/.exec(rest))) {
      out.push({ ...t, name: `${j}.${r[1] === "ff" ? "x_block" : "context_block"}.mlp.fc${r[2] === "2" ? 2 : 1}.${r[3]}` });
    } else throw new Error(`no MMDiT name for ${t.name}`);
  }
  for (const [name, parts] of fused) out.push(stackRows(name, ["q", "k", "v"].map((p) => parts.get(p)!)));
  return out;
}

export type SingleFileLayout = "sd15" | "sd2" | "sdxl" | "sd3";

/**
 * The tensors of a single file holding `components` (diffusers tensors by component name), in the original layout of
 * `family`; "sd2" writes an SD1.5-shaped text encoder the SD2 way (OpenCLIP). `configs` are the components' configs.
 * Missing components are left out.
 */
export function singleFileTensors(family: SingleFileLayout, components: Record<string, Map<string, Tensor>>, configs: Record<string, Record<string, unknown>>): Tensor[] {
  const out: Tensor[] = [];
  const vaeCfg = configs.vae as { block_out_channels: number[] };
  if (components.vae) {
    for (const t of components.vae.values()) {
      const name = `first_stage_model.${vaeToLdm(t.name, vaeCfg.block_out_channels.length)}`;
      const conv = /mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(name);
      out.push({ ...t, name, shape: conv ? [...t.shape, 1, 1] : t.shape });
    }
  }
  if (family === "sd3") {
    const layers = (configs.transformer as { num_layers: number }).num_layers;
    if (components.transformer) for (const t of mmditTensors(components.transformer, layers)) out.push({ ...t, name: `model.diffusion_model.${t.name}` });
    // SD3 files carry CLIP-L without a text projection (SD3 pools it unprojected).
    for (const t of components.text_encoder?.values() ?? []) if (t.name !== "text_projection.weight") out.push({ ...t, name: `text_encoders.clip_l.transformer.${t.name}` });
    for (const t of components.text_encoder_2?.values() ?? []) out.push({ ...t, name: `text_encoders.clip_g.transformer.${t.name}` });
    for (const t of components.text_encoder_3?.values() ?? []) out.push({ ...t, name: `text_encoders.t5xxl.transformer.${t.name}` });
    if (components.text_encoder) out.push({ name: "text_encoders.clip_l.transformer.text_model.embeddings.position_ids", dtype: "I64", shape: [1, 2], data: new Uint8Array(16) });
    return out;
  }
  if (components.unet) {
    const unetCfg = configs.unet as { layers_per_block: number; up_block_types: string[] };
    const upHasAttention = (b: number) => unetCfg.up_block_types[b].startsWith("CrossAttn");
    for (const t of components.unet.values()) out.push({ ...t, name: `model.diffusion_model.${unetToLdm(t.name, unetCfg.layers_per_block + 1, upHasAttention)}` });
  }
  const te1 = family === "sdxl" ? "conditioner.embedders.0.transformer." : family === "sd2" ? "cond_stage_model.model." : "cond_stage_model.transformer.";
  if (components.text_encoder) {
    if (family === "sd2") out.push(...openClipTensors(components.text_encoder, te1, { extraLayer: true, projection: true }));
    else for (const t of components.text_encoder.values()) out.push({ ...t, name: `${te1}${t.name}` });
  }
  if (family === "sdxl" && components.text_encoder_2) out.push(...openClipTensors(components.text_encoder_2, "conditioner.embedders.1.model."));

  // What model-site files also carry and a conversion leaves out.
  out.push({ name: "alphas_cumprod", dtype: "F32", shape: [2], data: new Uint8Array(8) });
  if (family !== "sd2" && components.text_encoder) out.push({ name: `${te1}text_model.embeddings.position_ids`, dtype: "I64", shape: [1, 2], data: new Uint8Array(16) });
  return out;
}

const COMPONENTS: Record<SingleFileLayout, string[]> = {
  sd15: ["unet", "vae", "text_encoder"],
  sd2: ["unet", "vae", "text_encoder"],
  sdxl: ["unet", "vae", "text_encoder", "text_encoder_2"],
  sd3: ["transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"],
};

/**
 * The original single file of a tiny diffusers checkpoint; "sd2" writes an SD1.5-shaped folder's text encoder the SD2
 * way (OpenCLIP). `leave` names components to leave out (e.g. SD3's T5, often shipped apart).
 */
export function makeSingleFile(dir: string, family: SingleFileLayout, file: string, opts: { leave?: string[] } = {}): void {
  const components: Record<string, Map<string, Tensor>> = {};
  const configs: Record<string, Record<string, unknown>> = {};
  for (const c of COMPONENTS[family]) {
    if (opts.leave?.includes(c) || !existsSync(join(dir, c, "config.json"))) continue;
    configs[c] = JSON.parse(readFileSync(join(dir, c, "config.json"), "utf8"));
    components[c] = tensorsOf(join(dir, c));
  }
  writeSafetensors(file, singleFileTensors(family, components, configs).reverse());
}

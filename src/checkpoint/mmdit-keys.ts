/**
 * Key conversion from the original SD3 / SD3.5 single-file layout (Stability's MMDiT under `model.diffusion_model.`,
 * text encoders under `text_encoders.*.transformer.`) to diffusers' SD3Transformer2DModel and the transformers text
 * encoders, as diffusers' loaders/single_file_utils.py does it (convert_sd3_transformer_checkpoint_to_diffusers,
 * convert_ldm_clip_checkpoint with the SD3 prefixes, convert_sd3_t5_checkpoint_to_diffusers), written from the
 * published layouts:
 * - `joint_blocks.{i}.x_block` is the image stream, `context_block` the text stream; each fused `attn.qkv` splits in
 *   thirds into to_q / to_k / to_v (image) and add_q_proj / add_k_proj / add_v_proj (text); `attn.proj` is to_out.0 /
 *   to_add_out; `attn.ln_q` / `ln_k` (SD3.5's qk RMS norm) are norm_q / norm_k and norm_added_q / norm_added_k;
 *   `attn2` (SD3.5 medium's second, image-only attention) keeps its name; `adaLN_modulation.1` is norm1 /
 *   norm1_context; `mlp.fc1` / `fc2` are ff(_context).net.0.proj / net.2;
 * - the last block's text stream ends before its attention output (no proj, no mlp) and its modulation is
 *   (shift, scale) where diffusers' AdaLayerNormContinuous takes (scale, shift): the two halves swap places, as in
 *   `final_layer.adaLN_modulation.1` (norm_out); `final_layer.linear` is proj_out;
 * - `pos_embed` is pos_embed.pos_embed, `x_embedder.proj` pos_embed.proj, `t_embedder.mlp.{0,2}` and
 *   `y_embedder.mlp.{0,2}` the timestep and pooled-text embedders' linear_1 / linear_2, `context_embedder` as is;
 * - CLIP-L and CLIP-G are stored in transformers' layout; CLIP-L's text projection is the identity (SD3 pools CLIP-L
 *   without projecting it), which diffusers writes whatever the file holds; T5-XXL is stored as T5EncoderModel.
 */
import { EaselError } from "../core/errors.ts";
import type { TensorEntry } from "../graph/safetensors.ts";
import { type ConvertedTensor, hfClipKey } from "./ldm-keys.ts";

export const MMDIT_PREFIX = "model.diffusion_model.";
export const SD3_CLIP_L_PREFIX = "text_encoders.clip_l.transformer.";
export const SD3_CLIP_G_PREFIX = "text_encoders.clip_g.transformer.";
export const SD3_T5_PREFIX = "text_encoders.t5xxl.transformer.";

const thirds = (e: TensorEntry, i: number): Partial<ConvertedTensor> => {
  const d = e.shape[0] / 3;
  return { shape: [d, ...e.shape.slice(1)], rows: [{ start: i * d, count: d }] };
};

/** (shift, scale) -> (scale, shift): the second half of the rows first. */
const swapHalves = (e: TensorEntry): Partial<ConvertedTensor> => {
  const h = e.shape[0] / 2;
  return {
    rows: [
      { start: h, count: h },
      { start: 0, count: h },
    ],
  };
};

const FIXED: Record<string, string> = {
  pos_embed: "pos_embed.pos_embed",
  "x_embedder.proj.weight": "pos_embed.proj.weight",
  "x_embedder.proj.bias": "pos_embed.proj.bias",
  "t_embedder.mlp.0.weight": "time_text_embed.timestep_embedder.linear_1.weight",
  "t_embedder.mlp.0.bias": "time_text_embed.timestep_embedder.linear_1.bias",
  "t_embedder.mlp.2.weight": "time_text_embed.timestep_embedder.linear_2.weight",
  "t_embedder.mlp.2.bias": "time_text_embed.timestep_embedder.linear_2.bias",
  "y_embedder.mlp.0.weight": "time_text_embed.text_embedder.linear_1.weight",
  "y_embedder.mlp.0.bias": "time_text_embed.text_embedder.linear_1.bias",
  "y_embedder.mlp.2.weight": "time_text_embed.text_embedder.linear_2.weight",
  "y_embedder.mlp.2.bias": "time_text_embed.text_embedder.linear_2.bias",
  "context_embedder.weight": "context_embedder.weight",
  "context_embedder.bias": "context_embedder.bias",
  "final_layer.linear.weight": "proj_out.weight",
  "final_layer.linear.bias": "proj_out.bias",
};

/** The MMDiT's blocks: one past the highest `joint_blocks.{i}` index. */
export function mmditLayers(entries: TensorEntry[], prefix = MMDIT_PREFIX): number {
  let n = 0;
  for (const e of entries) {
    const m = /^joint_blocks\.(\d+)\./.exec(e.name.slice(prefix.length));
    if (e.name.startsWith(prefix) && m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/** One joint block's key (after `joint_blocks.{i}.`) -> the diffusers tensor(s) it becomes. */
function blockTensors(e: TensorEntry, b: string, rest: string, last: boolean): ConvertedTensor[] | undefined {
  const one = (name: string, extra: Partial<ConvertedTensor> = {}): ConvertedTensor[] => [{ name, source: e, shape: e.shape, ...extra }];
  let m: RegExpExecArray | null;
  if ((m = /^(x_block|context_block)\.attn\.qkv\.(weight|bias)$/.exec(rest))) {
    const names = m[1] === "x_block" ? ["to_q", "to_k", "to_v"] : ["add_q_proj", "add_k_proj", "add_v_proj"];
    return names.map((n, i) => ({ name: `${b}.attn.${n}.${m![2]}`, source: e, shape: e.shape, ...thirds(e, i) }));
  }
  if ((m = /^x_block\.attn2\.qkv\.(weight|bias)$/.exec(rest))) {
    return ["to_q", "to_k", "to_v"].map((n, i) => ({ name: `${b}.attn2.${n}.${m![1]}`, source: e, shape: e.shape, ...thirds(e, i) }));
  }
  if ((m = /^x_block\.(attn|attn2)\.ln_(q|k)\.weight$/.exec(rest))) return one(`${b}.${m[1]}.norm_${m[2]}.weight`);
  if ((m = /^context_block\.attn\.ln_(q|k)\.weight$/.exec(rest))) return one(`${b}.attn.norm_added_${m[1]}.weight`);
  if ((m = /^x_block\.(attn|attn2)\.proj\.(weight|bias)$/.exec(rest))) return one(`${b}.${m[1]}.to_out.0.${m[2]}`);
  if (!last && (m = /^context_block\.attn\.proj\.(weight|bias)$/.exec(rest))) return one(`${b}.attn.to_add_out.${m[1]}`);
  if ((m = /^x_block\.adaLN_modulation\.1\.(weight|bias)$/.exec(rest))) return one(`${b}.norm1.linear.${m[1]}`);
  if ((m = /^context_block\.adaLN_modulation\.1\.(weight|bias)$/.exec(rest))) return one(`${b}.norm1_context.linear.${m[1]}`, last ? swapHalves(e) : {});
  if ((m = /^x_block\.mlp\.fc(1|2)\.(weight|bias)$/.exec(rest))) return one(`${b}.ff.net.${m[1] === "1" ? "0.proj" : "2"}.${m[2]}`);
  if (!last && (m = /^context_block\.mlp\.fc(1|2)\.(weight|bias)$/.exec(rest))) return one(`${b}.ff_context.net.${m[1] === "1" ? "0.proj" : "2"}.${m[2]}`);
  return undefined;
}

/** Every tensor under `prefix` as SD3Transformer2DModel's; throws naming the first keys in no known place. */
export function convertMmdit(file: string, entries: TensorEntry[], prefix = MMDIT_PREFIX): ConvertedTensor[] {
  const layers = mmditLayers(entries, prefix);
  const out: ConvertedTensor[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const k = e.name.slice(prefix.length);
    let m: RegExpExecArray | null;
    if (FIXED[k]) out.push({ name: FIXED[k], source: e, shape: e.shape });
    else if ((m = /^final_layer\.adaLN_modulation\.1\.(weight|bias)$/.exec(k))) out.push({ name: `norm_out.linear.${m[1]}`, source: e, shape: e.shape, ...swapHalves(e) });
    else if ((m = /^joint_blocks\.(\d+)\.(.+)$/.exec(k))) {
      const i = Number(m[1]);
      const converted = blockTensors(e, `transformer_blocks.${i}`, m[2], i === layers - 1);
      if (converted) out.push(...converted);
      else unknown.push(e.name);
    } else unknown.push(e.name);
  }
  if (unknown.length > 0) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${file}: MMDiT keys in no known layout: ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`, {
      details: { file },
    });
  }
  return out;
}

/** The bytes of 1.0 in each float dtype an identity matrix can be written in. */
const ONE: Partial<Record<TensorEntry["dtype"], number[]>> = { F32: [0x00, 0x00, 0x80, 0x3f], F16: [0x00, 0x3c], BF16: [0x80, 0x3f] };

/**
 * SD3's CLIP-L (`text_encoders.clip_l.transformer.*`, transformers' layout) as CLIPTextModelWithProjection, its
 * text projection the identity in the dtype of its embeddings, whatever projection the file holds.
 */
export function convertSd3ClipL(file: string, entries: TensorEntry[], prefix = SD3_CLIP_L_PREFIX): ConvertedTensor[] {
  const out: ConvertedTensor[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const k = e.name.slice(prefix.length);
    if (k.startsWith("text_projection.")) continue;
    const name = hfClipKey(k);
    if (name === null) continue;
    if (!/^text_model\.(embeddings|encoder|final_layer_norm)\./.test(name)) unknown.push(e.name);
    else out.push({ name, source: e, shape: e.shape });
  }
  if (unknown.length > 0) throw new EaselError("E_CHECKPOINT_INVALID", `${file}: CLIP-L keys in no known layout: ${unknown.slice(0, 5).join(", ")}`, { details: { file } });
  const embed = out.find((t) => t.name === "text_model.embeddings.token_embedding.weight");
  if (!embed) return out;
  const width = embed.shape[1];
  const one = ONE[embed.source.dtype];
  if (!one) throw new EaselError("E_NOT_SUPPORTED", `${file}: CLIP-L weights in ${embed.source.dtype}; F32, F16 or BF16 are converted`, { details: { file } });
  const data = new Uint8Array(width * width * one.length);
  for (let i = 0; i < width; i++) data.set(one, (i * width + i) * one.length);
  const source: TensorEntry = { ...embed.source, name: `${prefix}text_projection.weight (identity)`, shape: [width, width], byteLength: data.length };
  out.push({ name: "text_projection.weight", source, shape: [width, width], data });
  return out;
}

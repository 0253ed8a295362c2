/**
 * Key conversion from the original (CompVis / Stability "LDM" and SGM) single-file layout to the diffusers component
 * layout, as diffusers' loaders/single_file_utils.py does it (convert_ldm_unet_checkpoint,
 * convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint), written from the
 * published layouts. Every converted tensor is a byte range of the source file, possibly reshaped (the VAE's 1x1
 * attention convolutions become linear weights: same bytes), row ranges (OpenCLIP's fused q/k/v projection: each
 * third is contiguous; a modulation whose halves swap places), or transposed (OpenCLIP's text projection: the one
 * tensor that is copied).
 */
import { EaselError } from "../core/errors.ts";
import { DTYPE_SIZE, type TensorEntry } from "../graph/safetensors.ts";

/** Where one diffusers tensor comes from. */
export interface ConvertedTensor {
  name: string;
  source: TensorEntry;
  shape: number[];
  /** The concatenation of these row ranges [start, start + count) of the source (first axis). */
  rows?: { start: number; count: number }[];
  /** The 2-D source transposed. */
  transpose?: boolean;
  /** Bytes made here rather than read (an identity projection the file does not carry); `source` gives the dtype. */
  data?: Uint8Array;
}

export const UNET_PREFIX = "model.diffusion_model.";
export const VAE_PREFIX = "first_stage_model.";

const resnet = (s: string) =>
  s
    .replace("in_layers.0", "norm1")
    .replace("in_layers.2", "conv1")
    .replace("out_layers.0", "norm2")
    .replace("out_layers.3", "conv2")
    .replace("emb_layers.1", "time_emb_proj")
    .replace("skip_connection", "conv_shortcut");

/** The diffusers UNet2DConditionModel key of an LDM/SGM UNet key (prefix removed); undefined when it is not one. */
export function ldmUnetKey(k: string, layersPerBlock: number): string | undefined {
  const per = layersPerBlock + 1;
  let m: RegExpExecArray | null;
  if ((m = /^time_embed\.([02])\.(.+)$/.exec(k))) return `time_embedding.linear_${m[1] === "0" ? 1 : 2}.${m[2]}`;
  if ((m = /^label_emb\.0\.([02])\.(.+)$/.exec(k))) return `add_embedding.linear_${m[1] === "0" ? 1 : 2}.${m[2]}`;
  if ((m = /^input_blocks\.0\.0\.(.+)$/.exec(k))) return `conv_in.${m[1]}`;
  if ((m = /^out\.([02])\.(.+)$/.exec(k))) return `${m[1] === "0" ? "conv_norm_out" : "conv_out"}.${m[2]}`;
  if ((m = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k))) {
    const i = Number(m[1]) - 1;
    const block = Math.floor(i / per);
    const layer = i % per;
    if (m[2] === "0" && m[3].startsWith("op.")) return `down_blocks.${block}.downsamplers.0.conv.${m[3].slice(3)}`;
    if (m[2] === "0") return `down_blocks.${block}.resnets.${layer}.${resnet(m[3])}`;
    if (m[2] === "1") return `down_blocks.${block}.attentions.${layer}.${m[3]}`;
    return undefined;
  }
  if ((m = /^middle_block\.([012])\.(.+)$/.exec(k))) {
    if (m[1] === "1") return `mid_block.attentions.0.${m[2]}`;
    return `mid_block.resnets.${m[1] === "0" ? 0 : 1}.${resnet(m[2])}`;
  }
  if ((m = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k))) {
    const i = Number(m[1]);
    const block = Math.floor(i / per);
    const layer = i % per;
    if (m[2] === "0") return `up_blocks.${block}.resnets.${layer}.${resnet(m[3])}`;
    // The upsampler follows the resnet (index 1) or the resnet and the attention (index 2).
    if (m[3].startsWith("conv.")) return `up_blocks.${block}.upsamplers.0.conv.${m[3].slice(5)}`;
    if (m[2] === "1") return `up_blocks.${block}.attentions.${layer}.${m[3]}`;
    return undefined;
  }
  return undefined;
}

const VAE_ATTN: Record<string, string> = { norm: "group_norm", q: "to_q", k: "to_k", v: "to_v", proj_out: "to_out.0" };

/** The diffusers AutoencoderKL key of an LDM VAE key (prefix removed); `blocks` = len(block_out_channels). */
export function ldmVaeKey(k: string, blocks: number): string | undefined {
  let m: RegExpExecArray | null;
  if (/^(quant_conv|post_quant_conv)\./.test(k)) return k;
  if ((m = /^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$/.exec(k))) return k;
  if ((m = /^(encoder|decoder)\.norm_out\.(.+)$/.exec(k))) return `${m[1]}.conv_norm_out.${m[2]}`;
  if ((m = /^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/.exec(k))) return `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${m[3].replace("nin_shortcut", "conv_shortcut")}`;
  if ((m = /^encoder\.down\.(\d+)\.downsample\.conv\.(.+)$/.exec(k))) return `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
  if ((m = /^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/.exec(k))) {
    return `decoder.up_blocks.${blocks - 1 - Number(m[1])}.resnets.${m[2]}.${m[3].replace("nin_shortcut", "conv_shortcut")}`;
  }
  if ((m = /^decoder\.up\.(\d+)\.upsample\.conv\.(.+)$/.exec(k))) return `decoder.up_blocks.${blocks - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
  if ((m = /^(encoder|decoder)\.mid\.block_([12])\.(.+)$/.exec(k))) return `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${m[3].replace("nin_shortcut", "conv_shortcut")}`;
  if ((m = /^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(k))) return `${m[1]}.mid_block.attentions.0.${VAE_ATTN[m[2]]}.${m[3]}`;
  return undefined;
}

/**
 * transformers' CLIPTextModel(WithProjection) key of a key stored in that layout under a prefix (older files lack
 * `text_model.`); null for the position_ids buffer, which the model does not take.
 */
export function hfClipKey(k: string): string | null {
  if (k.endsWith("position_ids")) return null;
  return k.startsWith("text_model.") || k.startsWith("text_projection.") ? k : `text_model.${k}`;
}

function invalid(file: string, what: string): EaselError {
  return new EaselError("E_CHECKPOINT_INVALID", `${file}: ${what}`, { details: { file } });
}

/** Converts every entry under `prefix` with `keyOf`; throws naming the first keys that map to nothing. */
export function convertPrefixed(
  file: string,
  entries: TensorEntry[],
  prefix: string,
  /** undefined: not a key of this layout (an error); null: a known key that the diffusers model leaves out. */
  keyOf: (k: string) => string | null | undefined,
  reshape?: (name: string, e: TensorEntry) => number[] | undefined,
): ConvertedTensor[] {
  const out: ConvertedTensor[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const name = keyOf(e.name.slice(prefix.length));
    if (name === null) continue;
    if (name === undefined) {
      unknown.push(e.name);
      continue;
    }
    out.push({ name, source: e, shape: reshape?.(name, e) ?? e.shape });
  }
  if (unknown.length > 0) throw invalid(file, `keys in no known layout: ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`);
  return out;
}

/** The VAE's attention projections are 1x1 convolutions in the original layout, linear weights in diffusers'. */
export const vaeReshape = (name: string, e: TensorEntry) =>
  /mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name) && e.shape.length === 4 ? e.shape.slice(0, 2) : undefined;

/**
 * OpenCLIP's text tower (`prefix` + positional_embedding, token_embedding, transformer.resblocks.N, ln_final,
 * text_projection) as transformers' CLIPTextModelWithProjection; layers past `layers` are left out (SD2 uses the
 * penultimate layer and its diffusers config has one layer fewer than the file).
 */
export function convertOpenClip(file: string, entries: TensorEntry[], prefix: string, layers: number): ConvertedTensor[] {
  const out: ConvertedTensor[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    const k = e.name.slice(prefix.length);
    let m: RegExpExecArray | null;
    const put = (name: string, extra: Partial<ConvertedTensor> = {}): void => {
      out.push({ name, source: e, shape: e.shape, ...extra });
    };
    if (k === "logit_scale") continue;
    if (k === "positional_embedding") put("text_model.embeddings.position_embedding.weight");
    else if (k === "token_embedding.weight") put("text_model.embeddings.token_embedding.weight");
    else if ((m = /^ln_final\.(weight|bias)$/.exec(k))) put(`text_model.final_layer_norm.${m[1]}`);
    else if (k === "text_projection") put("text_projection.weight", { shape: [e.shape[1], e.shape[0]], transpose: true });
    else if ((m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(k))) {
      if (Number(m[1]) >= layers) continue;
      const base = `text_model.encoder.layers.${m[1]}`;
      const rest = m[2];
      let r: RegExpExecArray | null;
      if ((r = /^attn\.in_proj_(weight|bias)$/.exec(rest))) {
        const d = e.shape[0] / 3;
        for (const [i, p] of ["q_proj", "k_proj", "v_proj"].entries()) {
          put(`${base}.self_attn.${p}.${r[1]}`, { shape: [d, ...e.shape.slice(1)], rows: [{ start: i * d, count: d }] });
        }
      } else if ((r = /^(ln_1|ln_2)\.(weight|bias)$/.exec(rest))) put(`${base}.${r[1] === "ln_1" ? "layer_norm1" : "layer_norm2"}.${r[2]}`);
      else if ((r = /^mlp\.(c_fc|c_proj)\.(weight|bias)$/.exec(rest))) put(`${base}.mlp.${r[1] === "c_fc" ? "fc1" : "fc2"}.${r[2]}`);
      else if ((r = /^attn\.out_proj\.(weight|bias)$/.exec(rest))) put(`${base}.self_attn.out_proj.${r[1]}`);
      else unknown.push(e.name);
    } else unknown.push(e.name);
  }
  if (unknown.length > 0) throw invalid(file, `OpenCLIP keys in no known layout: ${unknown.slice(0, 5).join(", ")}`);
  return out;
}

/** The bytes of one converted tensor, read from its source range (a copy only for transposes and reordered rows). */
export function convertedBytes(t: ConvertedTensor, read: (e: TensorEntry, offset: number, length: number) => Uint8Array): Uint8Array {
  if (t.data) return t.data;
  const size = DTYPE_SIZE[t.source.dtype];
  if (t.rows) {
    const rowBytes = (t.source.shape.slice(1).reduce((a, b) => a * b, 1) || 1) * size;
    const parts = t.rows.map((r) => read(t.source, r.start * rowBytes, r.count * rowBytes));
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  const bytes = read(t.source, 0, t.source.byteLength);
  if (!t.transpose) return bytes;
  const [r, c] = t.source.shape;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.set(bytes.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
  return out;
}

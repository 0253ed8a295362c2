/**
 * Single-file parity: a single file made here from a tiny diffusers checkpoint by the inverse of diffusers'
 * conversion (written below from the published original layouts: CompVis/SGM UNet and VAE key names, CLIP under
 * `cond_stage_model.transformer.` / `conditioner.embedders.0.transformer.`, OpenCLIP under
 * `conditioner.embedders.1.model.` with fused q/k/v and a transposed text projection) converts back to exactly the
 * folder's tensors, and the converted folder generates exactly the folder's image, for SD1.5 and SDXL.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { EaselError } from "../core/errors.ts";
import { Engine } from "../engine/engine.ts";
import { findComponentWeightFiles, readSafetensorsHeader, readTensorBytes, type TensorEntry, writeSafetensors } from "../graph/safetensors.ts";
import { writeTinyCheckpoint } from "../models/testing/tiny-checkpoint.ts";
import { convertSingleFile, detectSingleFile } from "./single-file.ts";

type Tensor = { name: string; dtype: TensorEntry["dtype"]; shape: number[]; data: Uint8Array };

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

function tensorsOf(dir: string): Map<string, Tensor> {
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

/** The original single file of a tiny diffusers checkpoint. */
function makeSingleFile(dir: string, family: "sd15" | "sdxl", file: string): void {
  const unetCfg = JSON.parse(readFileSync(join(dir, "unet", "config.json"), "utf8"));
  const vaeCfg = JSON.parse(readFileSync(join(dir, "vae", "config.json"), "utf8"));
  const perBlock = unetCfg.layers_per_block + 1;
  const upHasAttention = (b: number) => unetCfg.up_block_types[b].startsWith("CrossAttn");
  const out: Tensor[] = [];
  for (const t of tensorsOf(join(dir, "unet")).values()) out.push({ ...t, name: `model.diffusion_model.${unetToLdm(t.name, perBlock, upHasAttention)}` });
  for (const t of tensorsOf(join(dir, "vae")).values()) {
    const name = `first_stage_model.${vaeToLdm(t.name, vaeCfg.block_out_channels.length)}`;
    const conv = /mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(name);
    out.push({ ...t, name, shape: conv ? [...t.shape, 1, 1] : t.shape });
  }
  const te1 = family === "sd15" ? "cond_stage_model.transformer." : "conditioner.embedders.0.transformer.";
  for (const t of tensorsOf(join(dir, "text_encoder")).values()) out.push({ ...t, name: `${te1}${t.name}` });
  if (family === "sdxl") {
    const te2 = tensorsOf(join(dir, "text_encoder_2"));
    const p = "conditioner.embedders.1.model.";
    const fused = new Map<string, Tensor[]>();
    for (const t of te2.values()) {
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
    out.push({ name: `${p}logit_scale`, dtype: "F32", shape: [], data: new Uint8Array(new Float32Array([4.6]).buffer) });
  }
  // What model-site files also carry and a conversion leaves out.
  out.push({ name: "alphas_cumprod", dtype: "F32", shape: [2], data: new Uint8Array(8) });
  out.push({ name: `${te1}text_model.embeddings.position_ids`, dtype: "I64", shape: [1, 2], data: new Uint8Array(16) });
  writeSafetensors(file, out.reverse());
}

describe("single-file checkpoints convert back to their diffusers folder", () => {
  let tmp: string;
  let engine: Engine;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "easel-single-"));
    engine = new Engine({ executionProvider: "cpu", intraOpThreads: 1, cacheDir: join(tmp, "cache") });
  });
  after(async () => {
    await engine.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  for (const family of ["sd15", "sdxl"] as const) {
    test(`${family}: same tensors, same image`, async () => {
      const folder = join(tmp, `${family}-folder`);
      writeTinyCheckpoint(folder, { family, seed: 17 });
      const single = join(tmp, `${family}.safetensors`);
      makeSingleFile(folder, family, single);
      assert.equal(detectSingleFile(single, readSafetensorsHeader(single).entries), family);

      const out = join(tmp, `${family}-converted`);
      const r = convertSingleFile(single, { configDir: folder, out });
      assert.equal(r.family, family);
      assert.deepEqual(r.fromConfig, []);
      const components = family === "sd15" ? ["unet", "vae", "text_encoder"] : ["unet", "vae", "text_encoder", "text_encoder_2"];
      for (const c of components) {
        const want = tensorsOf(join(folder, c));
        const got = tensorsOf(join(out, c));
        assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), c);
        for (const [k, t] of want) {
          const g = got.get(k)!;
          assert.deepEqual([g.dtype, g.shape], [t.dtype, t.shape], `${c} ${k}`);
          assert.ok(Buffer.from(g.data).equals(Buffer.from(t.data)), `${c} ${k} bytes`);
        }
      }
      const params = { prompt: "a red cube", negativePrompt: "blur", n: 1, width: 64, height: 64, steps: 3, scheduler: "euler", seed: 4 };
      const a = await engine.run(folder, params);
      const b = await engine.run(out, params);
      assert.ok(Buffer.from(a.images[0].rgb).equals(Buffer.from(b.images[0].rgb)), "same image");
    });
  }

  test("without --config, the first model of the same family and shape in the models directory lends its configs", () => {
    const models = join(tmp, "models");
    writeTinyCheckpoint(join(models, "a-xl"), { family: "sdxl", seed: 1 });
    writeTinyCheckpoint(join(models, "b-sd15"), { family: "sd15", seed: 1 });
    const single = join(tmp, "search.safetensors");
    makeSingleFile(join(models, "b-sd15"), "sd15", single);
    const r = convertSingleFile(single, { searchDir: models, out: join(tmp, "search-out") });
    assert.equal(r.configDir, join(models, "b-sd15"));
    // A folder of the family with other widths (the built-in model is an SD1.5 pipeline of its own size) is refused.
    assert.throws(
      () => convertSingleFile(single, { configDir: resolve("models/easel-shapes"), out: join(tmp, "shape-out") }),
      (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && /give --config a folder of this model's own shape/.test(e.message),
    );
    assert.throws(
      () => convertSingleFile(single, { searchDir: join(tmp, "nothing-here"), out: join(tmp, "none-out") }),
      (e: unknown) => e instanceof EaselError && /give --config DIR/.test(e.message),
    );
  });

  test("a file without its VAE takes the VAE from --config when it has weights, else names what is missing", () => {
    const folder = join(tmp, "sd15-novae");
    writeTinyCheckpoint(folder, { family: "sd15", seed: 18 });
    const full = join(tmp, "sd15-full.safetensors");
    makeSingleFile(folder, "sd15", full);
    const entries = readSafetensorsHeader(full).entries.filter((e) => !e.name.startsWith("first_stage_model."));
    const noVae = join(tmp, "sd15-novae.safetensors");
    writeSafetensors(noVae, entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: readTensorBytes(e) })));
    const r = convertSingleFile(noVae, { configDir: folder, out: join(tmp, "novae-out") });
    assert.deepEqual(r.fromConfig, ["vae"]);
    rmSync(join(folder, "vae", "diffusion_pytorch_model.safetensors"));
    assert.throws(
      () => convertSingleFile(noVae, { configDir: folder, out: join(tmp, "novae-out-2") }),
      (e: unknown) => e instanceof EaselError && e.code === "E_CHECKPOINT_INVALID" && /has no weights for vae/.test(e.message),
    );
    assert.throws(() => convertSingleFile(noVae, { out: join(tmp, "x") }), (e: unknown) => e instanceof EaselError && /give --config DIR/.test(e.message));
    const sd3 = join(tmp, "sd3.safetensors");
    writeSafetensors(sd3, [{ name: "model.diffusion_model.joint_blocks.0.x.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) }]);
    assert.throws(() => convertSingleFile(sd3, { configDir: folder, out: join(tmp, "y") }), (e: unknown) => e instanceof EaselError && e.code === "E_NOT_SUPPORTED");
  });
});

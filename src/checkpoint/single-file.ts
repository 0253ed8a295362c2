/**
 * Single-file checkpoints (A1111 / ComfyUI / model-site `.safetensors`): the family recognised from the key names and
 * shapes, every tensor mapped to the diffusers component layout (./ldm-keys.ts), and a diffusers folder written with
 * the tensors as stored (fp16 stays fp16). Configs, the scheduler and tokenizers come from a diffusers folder of the
 * same family (`configDir`, as diffusers' `from_single_file(config=...)`): only its JSON and tokenizer files are read,
 * and its weights only for components the single file lacks (e.g. a file saved without its VAE).
 */
import { createHash } from "node:crypto";
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import { readSafetensorsHeader, safetensorsPrefix, type TensorEntry } from "../graph/safetensors.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import {
  type ConvertedTensor,
  convertedBytes,
  convertOpenClip,
  convertPrefixed,
  hfClipKey,
  ldmUnetKey,
  ldmVaeKey,
  UNET_PREFIX,
  VAE_PREFIX,
  vaeReshape,
} from "./ldm-keys.ts";
import { parsePythonJson } from "./python-json.ts";

export type SingleFileFamily = "sd15" | "sd2" | "sdxl";

const notSupported = (file: string, what: string) => new EaselError("E_NOT_SUPPORTED", `${file}: ${what}`, { details: { file } });

/** The family of a single-file checkpoint from its keys and shapes (diffusers' infer_diffusers_model_type rules). */
export function detectSingleFile(file: string, entries: TensorEntry[]): SingleFileFamily {
  const has = (prefix: string) => entries.some((e) => e.name.startsWith(prefix));
  if (has("model.diffusion_model.joint_blocks.")) {
    throw notSupported(file, "an SD3 / SD3.5 single file; converting those is not supported yet: use the diffusers folder (easel pull)");
  }
  if (has("conditioner.embedders.0.model.")) throw notSupported(file, "an SDXL refiner single file; only SDXL base files are converted");
  if (has("conditioner.embedders.1.model.") || has(`${UNET_PREFIX}label_emb.`)) return "sdxl";
  if (has("cond_stage_model.model.")) return "sd2";
  const k = entries.find((e) => e.name === `${UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`);
  if (k?.shape[1] === 1024) return "sd2";
  if (has("cond_stage_model.transformer.") || k) return "sd15";
  throw new EaselError("E_CHECKPOINT_INVALID", `${file}: not a Stable Diffusion single-file checkpoint (no model.diffusion_model.* UNet keys)`);
}

interface ComponentPlan {
  /** model_index name and the weight file name diffusers / transformers save. */
  name: string;
  weightFile: string;
  convert: (config: Record<string, unknown>) => ConvertedTensor[];
}

function readJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new EaselError("E_INPUT_INVALID", `${file} is missing`, { param: "config" });
  return parsePythonJson(Buffer.from(readFileBytes(file)).toString("utf8")) as Record<string, unknown>;
}

function readFileBytes(file: string): Uint8Array {
  const size = statSync(file).size;
  const out = new Uint8Array(size);
  const fd = openSync(file, "r");
  try {
    let done = 0;
    while (done < size) done += readSync(fd, out, done, size - done, done);
  } finally {
    closeSync(fd);
  }
  return out;
}

const num = (c: Record<string, unknown>, k: string, file: string) => {
  const v = c[k];
  if (typeof v !== "number") throw new EaselError("E_CHECKPOINT_INVALID", `${file}: config ${k} is missing`);
  return v;
};

function plans(file: string, family: SingleFileFamily, entries: TensorEntry[]): ComponentPlan[] {
  const unet: ComponentPlan = {
    name: "unet",
    weightFile: "diffusion_pytorch_model.safetensors",
    convert: (c) => convertPrefixed(file, entries, UNET_PREFIX, (k) => ldmUnetKey(k, num(c, "layers_per_block", "unet/config.json"))),
  };
  const vae: ComponentPlan = {
    name: "vae",
    weightFile: "diffusion_pytorch_model.safetensors",
    convert: (c) => convertPrefixed(file, entries, VAE_PREFIX, (k) => ldmVaeKey(k, (c.block_out_channels as unknown[]).length), vaeReshape),
  };
  const clip = (name: string, prefix: string): ComponentPlan => ({ name, weightFile: "model.safetensors", convert: () => convertPrefixed(file, entries, prefix, hfClipKey) });
  const openClip = (name: string, prefix: string, projection: boolean): ComponentPlan => ({
    name,
    weightFile: "model.safetensors",
    convert: (c) => convertOpenClip(file, entries, prefix, num(c, "num_hidden_layers", `${name}/config.json`)).filter((t) => projection || t.name !== "text_projection.weight"),
  });
  if (family === "sd15") return [unet, vae, clip("text_encoder", "cond_stage_model.transformer.")];
  if (family === "sd2") return [unet, vae, openClip("text_encoder", "cond_stage_model.model.", false)];
  return [unet, vae, clip("text_encoder", "conditioner.embedders.0.transformer."), openClip("text_encoder_2", "conditioner.embedders.1.model.", true)];
}

const PIPELINE: Record<SingleFileFamily, RegExp> = {
  sd15: /^StableDiffusion(Img2Img|Inpaint)?Pipeline$/,
  sd2: /^StableDiffusion(Img2Img|Inpaint)?Pipeline$/,
  sdxl: /^StableDiffusionXL(Img2Img|Inpaint)?Pipeline$/,
};

/** Writes tensors to a safetensors file one by one (a UNet does not fit one Buffer), 8-byte aligned like the reference writer. */
function writeConverted(out: string, tensors: ConvertedTensor[], read: (e: TensorEntry, offset: number, length: number) => Uint8Array): void {
  const prefix = safetensorsPrefix(
    tensors.map((t) => ({
      name: t.name,
      dtype: t.source.dtype,
      shape: t.shape,
      byteLength: t.shape.reduce((a, b) => a * b, 1) * (t.source.byteLength / Math.max(1, t.source.shape.reduce((a, b) => a * b, 1))),
    })),
  );
  const fd = openSync(out, "w");
  try {
    writeSync(fd, prefix);
    for (const t of tensors) {
      const bytes = convertedBytes(t, read);
      writeSync(fd, bytes);
    }
  } finally {
    closeSync(fd);
  }
}

export interface ConvertOptions {
  /** A diffusers folder of the same family: model_index.json, configs, scheduler and tokenizer files. */
  configDir?: string;
  /** Without configDir: a folder of diffusers models (the models directory) to take the first matching one from. */
  searchDir?: string;
  /** Output folder (must not exist); written beside it and renamed when complete. */
  out: string;
}

export interface ConvertResult {
  family: SingleFileFamily;
  out: string;
  /** The folder configs, scheduler and tokenizers came from. */
  configDir: string;
  tensors: number;
  /** Components whose weights came from configDir because the file has none. */
  fromConfig: string[];
}

/** The UNet's widths in the file: conv_in's output channels and the cross-attention context width. */
function unetWidths(entries: TensorEntry[]): { channels?: number; context?: number } {
  const get = (k: string) => entries.find((e) => e.name === `${UNET_PREFIX}${k}`)?.shape;
  const ctx = entries.find((e) => e.name.startsWith(UNET_PREFIX) && e.name.endsWith("attn2.to_k.weight"));
  return { channels: get("input_blocks.0.0.weight")?.[0], context: ctx?.shape[1] };
}

/** The config folder's UNet must have the file's widths (a fine-tune with other shapes needs its own --config). */
function checkShapes(file: string, entries: TensorEntry[], unet: Record<string, unknown>, configDir: string): void {
  const w = unetWidths(entries);
  const channels = (unet.block_out_channels as number[] | undefined)?.[0];
  const context = unet.cross_attention_dim;
  if ((w.channels !== undefined && w.channels !== channels) || (w.context !== undefined && w.context !== context)) {
    throw new EaselError(
      "E_INPUT_INVALID",
      `${basename(file)} has a UNet ${w.channels} channels wide with ${w.context}-wide cross-attention; ${configDir}/unet/config.json says ${channels} and ${String(context)}: give --config a folder of this model's own shape`,
      { param: "config" },
    );
  }
}

/** The first diffusers folder in `dir` of `family` whose UNet has the file's widths (sorted by name). */
export function findConfigFolder(dir: string, family: SingleFileFamily, entries: TensorEntry[]): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir).sort()) {
    const d = join(dir, name);
    if (name.startsWith(".") || !existsSync(join(d, "model_index.json")) || !existsSync(join(d, "unet", "config.json"))) continue;
    try {
      const cls = readJson(join(d, "model_index.json"))._class_name;
      if (typeof cls !== "string" || !PIPELINE[family].test(cls)) continue;
      checkShapes("", entries, readJson(join(d, "unet", "config.json")), d);
      return d;
    } catch {
      // Not a match (or not readable): the next folder.
    }
  }
  return undefined;
}

/** Converts a single-file checkpoint into a diffusers folder at `opts.out`. */
export function convertSingleFile(path: string, opts: ConvertOptions): ConvertResult {
  const file = resolve(path);
  if (!existsSync(file)) throw new EaselError("E_INPUT_INVALID", `${file} does not exist`, { param: "file" });
  if (!file.endsWith(".safetensors")) throw notSupported(file, "only .safetensors single files are read (pickle .ckpt files can run code when loaded)");
  const { entries } = readSafetensorsHeader(file);
  const family = detectSingleFile(file, entries);
  const found = opts.configDir ?? (opts.searchDir ? findConfigFolder(opts.searchDir, family, entries) : undefined);
  if (!found) {
    throw new EaselError(
      "E_INPUT_INVALID",
      `${basename(file)} is a ${family} single file; give --config DIR, a diffusers folder of that family (its model_index.json, component configs, scheduler and tokenizer files are used; its weights are not needed), e.g. one fetched with easel pull${opts.searchDir ? `; ${opts.searchDir} has no ${family} folder whose shapes match` : ""}`,
      { param: "config" },
    );
  }
  const configDir = resolve(found);
  checkShapes(file, entries, readJson(join(configDir, "unet", "config.json")), configDir);
  const modelIndex = readJson(join(configDir, "model_index.json"));
  if (typeof modelIndex._class_name !== "string" || !PIPELINE[family].test(modelIndex._class_name)) {
    throw new EaselError("E_INPUT_INVALID", `${configDir} is a ${String(modelIndex._class_name)}, not a ${family} pipeline folder`, { param: "config" });
  }
  const out = resolve(opts.out);
  if (existsSync(out)) throw new EaselError("E_INPUT_INVALID", `${out} already exists`, { param: "out" });
  const tmp = `${out}.converting-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const fd = openSync(file, "r");
  const read = (e: TensorEntry, offset: number, length: number) => {
    const buf = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, e.offset + offset + done);
      if (n === 0) throw new EaselError("E_CHECKPOINT_INVALID", `${file}: ends inside tensor ${e.name}`);
      done += n;
    }
    return buf;
  };
  try {
    let tensors = 0;
    const fromConfig: string[] = [];
    const missing: string[] = [];
    const planned = new Set<string>();
    for (const p of plans(file, family, entries)) {
      planned.add(p.name);
      const config = readJson(join(configDir, p.name, "config.json"));
      const converted = p.convert(config);
      const dir = join(tmp, p.name);
      if (converted.length === 0) {
        // The file lacks this component (a UNet-only file, one saved without its VAE): take it from configDir if it has weights.
        const src = join(configDir, p.name);
        if (readdirSync(src).some((n) => n.endsWith(".safetensors"))) {
          cpSync(src, dir, { recursive: true });
          fromConfig.push(p.name);
        } else missing.push(p.name);
        continue;
      }
      mkdirSync(dir);
      cpSync(join(configDir, p.name, "config.json"), join(dir, "config.json"));
      writeConverted(join(dir, p.weightFile), converted, read);
      tensors += converted.length;
    }
    if (missing.length > 0) {
      throw new EaselError(
        "E_CHECKPOINT_INVALID",
        `${basename(file)} has no weights for ${missing.join(", ")}, and ${configDir} has none either: give --config a folder whose ${missing.join(", ")} folder${missing.length > 1 ? "s hold" : " holds"} weights`,
        { details: { missing } },
      );
    }
    // The scheduler and tokenizers are configuration: copied as they are. Other components model_index.json names
    // (a safety checker, a feature extractor) are not in single files and are written as absent ([null, null]).
    const index: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(modelIndex)) {
      const keep = !Array.isArray(spec) || planned.has(name) || (typeof spec[1] === "string" && /(Scheduler|Tokenizer(Fast)?)$/.test(spec[1]));
      index[name] = keep ? spec : [null, null];
    }
    writeFileSync(join(tmp, "model_index.json"), `${JSON.stringify(index, null, 2)}\n`);
    for (const [name, spec] of Object.entries(index)) {
      if (name.startsWith("_") || planned.has(name) || !Array.isArray(spec) || spec[0] === null) continue;
      const src = join(configDir, name);
      if (!existsSync(src)) throw new EaselError("E_INPUT_INVALID", `${configDir}: ${name}/ named in model_index.json is missing`, { param: "config" });
      cpSync(src, join(tmp, name), { recursive: true, filter: (s) => statSync(s).isDirectory() || !/\.(safetensors|bin|ckpt|onnx|msgpack)$/.test(s) });
    }
    loadCheckpoint(tmp);
    renameSync(tmp, out);
    return { family, out, configDir, tensors, fromConfig };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    closeSync(fd);
  }
}

export const CONVERTED_DIR = ".converted";

/**
 * The diffusers folder of a single file lying in the models directory: converted once into
 * `<modelsDir>/.converted/<name>-<key>/` (the key covers the file's path, size and modification time, so a replaced
 * file converts again and the older folder is removed), configs and tokenizers taken from a model of the same family
 * and widths already in the models directory. The conversion copies the tensors: a second copy on disk.
 */
export function ensureConvertedSingleFile(file: string, modelsDir: string): string {
  const st = statSync(file);
  const name = basename(file).replace(/\.safetensors$/, "");
  const key = createHash("sha256").update(`${resolve(file)}:${st.size}:${st.mtimeMs}`).digest("hex").slice(0, 16);
  const root = join(resolve(modelsDir), CONVERTED_DIR);
  const out = join(root, `${name}-${key}`);
  if (existsSync(join(out, "model_index.json"))) return out;
  convertSingleFile(file, { searchDir: modelsDir, out });
  for (const old of readdirSync(root)) {
    if (old !== basename(out) && old.startsWith(`${name}-`) && /^[0-9a-f]{16}$/.test(old.slice(name.length + 1))) rmSync(join(root, old), { recursive: true, force: true });
  }
  return out;
}

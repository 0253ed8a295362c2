/**
 * Single-file checkpoints (A1111 / ComfyUI / model-site `.safetensors`): SD1.x, SD2.x, SDXL base and SD3 / SD3.5
 * files recognised from their keys, every tensor mapped to the diffusers component layout (./single-file-plan.ts) and
 * a diffusers folder written with the tensors as stored (fp16 stays fp16). Configs, the scheduler and tokenizers come,
 * in this order, from a diffusers folder of the same family given as `configDir` (as diffusers'
 * `from_single_file(config=...)`), the first folder of the family whose configs fit the file in `searchDir` (the models
 * directory), or Easel's bundled copy of the published base pipeline's files (./standard-configs.ts; SD1.x, SD2.x,
 * SDXL; none for SD3, whose T5 tokenizer Easel cannot ship). A folder's weights are read only for components the
 * single file lacks (e.g. a file saved without its VAE, or SD3's T5 shipped apart).
 */
import { createHash } from "node:crypto";
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { EaselError } from "../core/errors.ts";
import { DTYPE_SIZE, readSafetensorsHeader, safetensorsPrefix, type TensorEntry } from "../graph/safetensors.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { type ConvertedTensor, convertedBytes } from "./ldm-keys.ts";
import { detectSingleFile, PIPELINE, type Prepared, prepareConversion, readConfigJson, type SingleFileFamily, sd3Release } from "./single-file-plan.ts";
import { STANDARD_CONFIGS, type StandardFamily, writeStandardConfigs } from "./standard-configs.ts";

export { detectSingleFile, type SingleFileFamily } from "./single-file-plan.ts";

const notSupported = (file: string, what: string) => new EaselError("E_NOT_SUPPORTED", `${file}: ${what}`, { details: { file } });

/** Writes tensors to a safetensors file one by one (a UNet does not fit one Buffer), 8-byte aligned like the reference writer. */
function writeConverted(out: string, tensors: ConvertedTensor[], read: (e: TensorEntry, offset: number, length: number) => Uint8Array): void {
  const prefix = safetensorsPrefix(
    tensors.map((t) => ({ name: t.name, dtype: t.source.dtype, shape: t.shape, byteLength: t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.source.dtype] })),
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
  /** The folder configs, scheduler and tokenizers came from; undefined when they are Easel's bundled ones. */
  configDir?: string;
  /** The published repository whose bundled configs were used, when no folder was. */
  bundled?: string;
  tensors: number;
  /** Components whose weights came from configDir because the file has none. */
  fromConfig: string[];
}

/** The first diffusers folder in `dir` of `family` whose configs fit the file's tensors (sorted by name). */
export function findConfigFolder(dir: string, family: SingleFileFamily, entries: TensorEntry[], file = ""): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir).sort()) {
    const d = join(dir, name);
    if (name.startsWith(".") || !existsSync(join(d, "model_index.json"))) continue;
    try {
      const cls = readConfigJson(join(d, "model_index.json"))._class_name;
      if (typeof cls !== "string" || !PIPELINE[family].test(cls)) continue;
      prepareConversion(file, family, entries, d);
      return d;
    } catch {
      // Not a match (or not readable): the next folder.
    }
  }
  return undefined;
}

/** The error for an SD3 file (nothing bundled) when neither --config nor the models directory has a folder that fits. */
function noSd3Folder(file: string, entries: TensorEntry[], searchDir: string | undefined): EaselError {
  const release = sd3Release(entries);
  return new EaselError(
    "E_INPUT_INVALID",
    `${basename(file)} is an ${release.label} single file, and Easel bundles no SD3 configs (T5's tokenizer is not shipped with it): give --config DIR, a diffusers folder of that release with its model_index.json, transformer, vae and text_encoder / text_encoder_2 / text_encoder_3 configs, scheduler and tokenizer / tokenizer_2 / tokenizer_3 files (weights are only read for components the file lacks, such as T5), e.g. one fetched with easel pull ${release.repo}${searchDir ? `; ${searchDir} has no folder of that release whose configs fit the file` : ""}`,
    { param: "config", details: { file, missing: ["model_index.json", "component configs", "scheduler", "tokenizers"] } },
  );
}

/** Converts a single-file checkpoint into a diffusers folder at `opts.out`. */
export function convertSingleFile(path: string, opts: ConvertOptions): ConvertResult {
  const file = resolve(path);
  if (!existsSync(file)) throw new EaselError("E_INPUT_INVALID", `${file} does not exist`, { param: "file" });
  if (!file.endsWith(".safetensors")) throw notSupported(file, "only .safetensors single files are read (pickle .ckpt files can run code when loaded)");
  const { entries } = readSafetensorsHeader(file);
  const family = detectSingleFile(file, entries);
  const out = resolve(opts.out);
  if (existsSync(out)) throw new EaselError("E_INPUT_INVALID", `${out} already exists`, { param: "out" });

  // Configs: --config, else a folder of the family in the models directory, else the bundled ones.
  let configDir: string;
  let where: string;
  let bundled: string | undefined;
  let bundledDir: string | undefined;
  const found = opts.configDir ? resolve(opts.configDir) : opts.searchDir ? findConfigFolder(opts.searchDir, family, entries, file) : undefined;
  if (found) {
    configDir = found;
    where = found;
  } else if (family in STANDARD_CONFIGS) {
    const standard = STANDARD_CONFIGS[family as StandardFamily];
    bundledDir = `${out}.configs-${process.pid}`;
    rmSync(bundledDir, { recursive: true, force: true });
    writeStandardConfigs(family as StandardFamily, bundledDir);
    configDir = bundledDir;
    where = `Easel's bundled ${standard.label} configs (${standard.repo})`;
    bundled = standard.repo;
  } else {
    throw noSd3Folder(file, entries, opts.searchDir);
  }
  try {
    const prepared = prepareConversion(file, family, entries, configDir, where);
    const r = writeFolder(file, prepared, configDir, where, out);
    return { family, out, ...(bundled ? { bundled } : { configDir }), ...r };
  } finally {
    if (bundledDir) rmSync(bundledDir, { recursive: true, force: true });
  }
}

/** Writes the converted folder: tensors, configs, scheduler and tokenizers, model_index.json; checked, then renamed into place. */
function writeFolder(file: string, prepared: Prepared, configDir: string, where: string, out: string): { tensors: number; fromConfig: string[] } {
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
    for (const { plan, converted } of prepared.components) {
      planned.add(plan.name);
      const dir = join(tmp, plan.name);
      if (converted.length === 0) {
        // The file lacks this component (a UNet-only file, one saved without its VAE): take it from configDir if it has weights.
        const src = join(configDir, plan.name);
        if (readdirSync(src).some((n) => n.endsWith(".safetensors"))) {
          cpSync(src, dir, { recursive: true });
          fromConfig.push(plan.name);
        } else missing.push(plan.name);
        continue;
      }
      mkdirSync(dir);
      cpSync(join(configDir, plan.name, "config.json"), join(dir, "config.json"));
      writeConverted(join(dir, plan.weightFile), converted, read);
      tensors += converted.length;
    }
    if (missing.length > 0) {
      throw new EaselError(
        "E_CHECKPOINT_INVALID",
        `${basename(file)} has no weights for ${missing.join(", ")}, and ${where} has none either: give --config a folder whose ${missing.join(", ")} folder${missing.length > 1 ? "s hold" : " holds"} weights`,
        { details: { missing } },
      );
    }
    // The scheduler and tokenizers are configuration: copied as they are. Other components model_index.json names
    // (a safety checker, a feature extractor) are not in single files and are written as absent ([null, null]).
    const index: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(prepared.modelIndex)) {
      const keep = !Array.isArray(spec) || planned.has(name) || (typeof spec[1] === "string" && /(Scheduler|Tokenizer(Fast)?)$/.test(spec[1]));
      index[name] = keep ? spec : [null, null];
    }
    writeFileSync(join(tmp, "model_index.json"), `${JSON.stringify(index, null, 2)}\n`);
    for (const [name, spec] of Object.entries(index)) {
      if (name.startsWith("_") || planned.has(name) || !Array.isArray(spec) || spec[0] === null) continue;
      const src = join(configDir, name);
      if (!existsSync(src)) throw new EaselError("E_INPUT_INVALID", `${where}: ${name}/ named in model_index.json is missing`, { param: "config" });
      cpSync(src, join(tmp, name), { recursive: true, filter: (s) => statSync(s).isDirectory() || !/\.(safetensors|bin|ckpt|onnx|msgpack)$/.test(s) });
    }
    loadCheckpoint(tmp);
    renameSync(tmp, out);
    return { tensors, fromConfig };
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
 * whose configs fit the file already in the models directory, else the bundled standard ones. The conversion copies
 * the tensors: a second copy on disk.
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

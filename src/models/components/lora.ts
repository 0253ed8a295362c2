/**
 * LoRA files (low-rank weight deltas) read in the formats that circulate, and merged into a component's weights:
 * W' = W + sum_i scale_i * (alpha_i / rank_i) * up_i @ down_i.
 *
 * Formats (key layouts as diffusers' loaders/lora_pipeline.py and lora_conversion_utils.py read them):
 * - kohya / A1111: `lora_unet_<module>.lora_down.weight`, `.lora_up.weight`, `.alpha`; `lora_te_` (SD1.5's text
 *   encoder), `lora_te1_` / `lora_te2_` (SDXL's and SD3's two CLIPs), `lora_transformer_` (SD3's transformer, with
 *   diffusers' module names). `<module>` is the module path with "." written as "_"; it is matched against the
 *   component's own weight names. SDXL files name UNet modules the original (SGM) way (`input_blocks_4_1_...`);
 *   those are matched through the original-layout names of ../../checkpoint/ldm-unet.ts.
 * - PEFT (diffusers >= 0.24): `unet.<module>.lora_A.weight` / `.lora_B.weight`, `text_encoder.`, `text_encoder_2.`;
 *   SD3's training scripts write `transformer.<module>.lora_A.weight` (`transformer_blocks.0.attn.to_q`,
 *   `attn.add_q_proj`, `ff.net.0.proj`, `norm1.linear`, ...).
 * - diffusers' older training scripts: `<module>.lora.down.weight` / `.lora.up.weight`,
 *   `<module>.lora_linear_layer.down.weight` / `.up.weight`, and attention processors
 *   `<attn>.processor.to_q_lora.down.weight` (`to_out_lora` is `to_out.0`).
 * Unprefixed dotted keys are the denoiser's: the SD3 transformer's when the path starts with one of its top-level
 * modules (`transformer_blocks`, `context_embedder`, `time_text_embed`, `pos_embed`, `norm_out`, `proj_out`), the
 * UNet's otherwise.
 * Alpha: a module's `.alpha` tensor; else, in PEFT files, the `lora_adapter_metadata` JSON diffusers writes into the
 * safetensors metadata (`<component>.lora_alpha`, `<component>.alpha_pattern`; unprefixed for a file one model saved
 * itself); else alpha = rank (scale 1 per unit of `scale`), as diffusers reads such files.
 *
 * How a LoRA set is applied (why merged weights): for each component it touches, the merged tensors are written
 * once per LoRA set (files, scales) to a float32 safetensors file in the graph cache, and the component's graph
 * takes those tensors from it (the rest still from the checkpoint), so the graph itself is the unchanged builder
 * output and the cached ONNX model is keyed by that file like any weight file. Inference costs exactly what it costs
 * without a LoRA. The price is paid per LoRA set: the merge (one matrix product per module), disk for the merged
 * tensors (4 bytes per parameter of the touched layers), and a session load for each component touched.
 * Low-rank branches with scale inputs would avoid the session load but add two matmuls per touched layer to every
 * step of every request, LoRA or not.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync, writeSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { ldmUnetKey } from "../../checkpoint/ldm-keys.ts";
import { EaselError } from "../../core/errors.ts";
import { readSafetensorsHeader, readTensorData, safetensorsPrefix, type TensorEntry } from "../../graph/safetensors.ts";
import { writeFileThroughTemp, writeFileThroughTempAsync } from "../../graph/temp-file.ts";

export type LoraComponent = "unet" | "transformer" | "text_encoder" | "text_encoder_2";

/** One LoRA file and its strength, as a request or the CLI names it (the file already resolved). */
export interface LoraChoice {
  file: string;
  scale: number;
}

/** One low-rank pair of a LoRA file. */
export interface LoraModule {
  component: LoraComponent;
  /** Module path as the file writes it: dotted (PEFT, diffusers) or kohya's underscore form. */
  module: string;
  kohya: boolean;
  down: TensorEntry;
  up: TensorEntry;
  alpha?: number;
}

const KOHYA_RE = /^(lora_unet|lora_transformer|lora_te1|lora_te2|lora_te)_(.+?)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const KOHYA_COMPONENT: Record<string, LoraComponent> = {
  lora_unet: "unet",
  lora_transformer: "transformer",
  lora_te: "text_encoder",
  lora_te1: "text_encoder",
  lora_te2: "text_encoder_2",
};
const PREFIX_RE = /^(unet|transformer|text_encoder|text_encoder_2)\./;
/** Top-level modules of the SD3 transformer (SD3Transformer2DModel): unprefixed dotted keys under them are its. */
const TRANSFORMER_TOP_RE = /^(transformer_blocks|context_embedder|time_text_embed|pos_embed|norm_out|proj_out)\./;
/** kohya's T5 (SD3's text_encoder_3) prefix: recognised so that such a file is refused by name (no LoRA reaches T5). */
const KOHYA_T5_RE = /^lora_te3_/;
/** The safetensors metadata entry diffusers writes a PEFT adapter's LoraConfig (r, lora_alpha, alpha_pattern) to. */
const PEFT_METADATA_KEY = "lora_adapter_metadata";
/** [pattern, which side] for the dotted formats; group 1 is the module path. */
const DOTTED: [RegExp, "down" | "up" | "alpha"][] = [
  [/^(.+)\.lora_A(?:\.default)?\.weight$/, "down"],
  [/^(.+)\.lora_B(?:\.default)?\.weight$/, "up"],
  [/^(.+)\.lora\.down\.weight$/, "down"],
  [/^(.+)\.lora\.up\.weight$/, "up"],
  [/^(.+)\.lora_linear_layer\.down\.weight$/, "down"],
  [/^(.+)\.lora_linear_layer\.up\.weight$/, "up"],
  [/^(.+)\.alpha$/, "alpha"],
];

function bad(file: string, what: string): EaselError {
  return new EaselError("E_INPUT_INVALID", `LoRA ${basename(file)}: ${what}`, { param: "loras", details: { file } });
}

/** `a.processor.to_q_lora.down.weight` -> `a.to_q.lora.down.weight` (and `to_out_lora` -> `to_out.0`). */
function normaliseProcessorKey(key: string): string {
  return key.replace(/\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/, (_m, proj: string, side: string) => `.${proj === "to_out" ? "to_out.0" : proj}.lora.${side}.weight`);
}

/**
 * The alpha a PEFT adapter's LoraConfig gives `module` (diffusers' `lora_adapter_metadata`): the first
 * `alpha_pattern` entry that matches the module path (a regular expression matched at the end of the path, after a
 * "."; one starting with "^" from the start), else `lora_alpha`. The config's keys carry the component's prefix
 * (`transformer.lora_alpha`) when the file's keys do; a file of unprefixed keys may have either form.
 */
function metadataAlpha(config: Record<string, unknown> | undefined, component: LoraComponent, prefixed: boolean, module: string): number | undefined {
  if (!config) return undefined;
  for (const p of prefixed ? [`${component}.`] : ["", `${component}.`]) {
    const patterns = config[`${p}alpha_pattern`];
    if (patterns && typeof patterns === "object") {
      for (const [pattern, value] of Object.entries(patterns as Record<string, unknown>)) {
        let re: RegExp;
        try {
          re = new RegExp(pattern.startsWith("^") ? `${pattern}$` : `(?:^|\\.)(?:${pattern})$`);
        } catch {
          continue;
        }
        if (re.test(module) && typeof value === "number" && Number.isFinite(value)) return value;
      }
    }
    const alpha = config[`${p}lora_alpha`];
    if (typeof alpha === "number" && Number.isFinite(alpha)) return alpha;
  }
  return undefined;
}

function peftMetadata(file: string, metadata: Record<string, string>): Record<string, unknown> | undefined {
  const raw = metadata[PEFT_METADATA_KEY];
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    throw bad(file, `its ${PEFT_METADATA_KEY} metadata is not JSON`);
  }
}

/** Reads a LoRA file's header and pairs its tensors per module; throws naming keys it does not understand. */
export function readLoraFile(path: string): LoraModule[] {
  const file = resolve(path);
  if (!existsSync(file)) throw bad(file, "file not found");
  const { entries, metadata } = readSafetensorsHeader(file);
  type Slot = { component: LoraComponent; module: string; kohya: boolean; prefixed: boolean; down?: TensorEntry; up?: TensorEntry; alpha?: TensorEntry };
  const parts = new Map<string, Slot>();
  const unknown: string[] = [];
  const t5: string[] = [];
  for (const e of entries) {
    let component: LoraComponent;
    let module: string;
    let side: "down" | "up" | "alpha";
    let kohya = false;
    let prefixed = true;
    const k = KOHYA_RE.exec(e.name);
    if (k) {
      component = KOHYA_COMPONENT[k[1]];
      module = k[2];
      side = k[3] === "alpha" ? "alpha" : k[3].startsWith("lora_down") ? "down" : "up";
      kohya = true;
    } else if (KOHYA_T5_RE.test(e.name)) {
      t5.push(e.name);
      continue;
    } else {
      let key = normaliseProcessorKey(e.name);
      const p = PREFIX_RE.exec(key);
      if (p) key = key.slice(p[0].length);
      prefixed = p !== null;
      component = (p?.[1] as LoraComponent | undefined) ?? (TRANSFORMER_TOP_RE.test(key) ? "transformer" : "unet");
      const hit = DOTTED.map(([re, s]) => [re.exec(key), s] as const).find(([m]) => m);
      if (!hit) {
        unknown.push(e.name);
        continue;
      }
      module = hit[0]![1];
      side = hit[1];
    }
    const id = `${component}:${module}`;
    const slot = parts.get(id) ?? { component, module, kohya, prefixed };
    slot[side] = e;
    parts.set(id, slot);
  }
  if (unknown.length > 0) {
    throw bad(
      file,
      `keys in no known LoRA layout (kohya lora_unet_/lora_transformer_/lora_te_, PEFT lora_A/lora_B, lora.down/up, lora_linear_layer): ${unknown.slice(0, 5).join(", ")}${unknown.length > 5 ? ", ..." : ""}`,
    );
  }
  if (t5.length > 0) {
    throw new EaselError("E_NOT_SUPPORTED", `LoRA ${basename(file)} has T5 (text_encoder_3) weights, which LoRAs are not applied to: ${t5[0]}${t5.length > 1 ? ", ..." : ""}`, {
      param: "loras",
      details: { file },
    });
  }
  const peft = peftMetadata(file, metadata);
  const modules: LoraModule[] = [];
  for (const p of parts.values()) {
    if (!p.down || !p.up) throw bad(file, `${p.component} module ${p.module} has ${p.down ? "no up" : "no down"} matrix`);
    const rank = p.down.shape[0];
    if (p.up.shape.length < 2 || p.up.shape[1] !== rank) {
      throw bad(file, `${p.component} module ${p.module}: down [${p.down.shape}] and up [${p.up.shape}] do not share a rank`);
    }
    let alpha: number | undefined;
    if (p.alpha) {
      const a = readTensorData(p.alpha);
      if (a.length !== 1 || !Number.isFinite(a[0])) throw bad(file, `${p.module}.alpha is not one finite number`);
      alpha = a[0];
    } else if (!p.kohya) {
      alpha = metadataAlpha(peft, p.component, p.prefixed, p.module);
    }
    modules.push({ component: p.component, module: p.module, kohya: p.kohya, down: p.down, up: p.up, alpha });
  }
  if (modules.length === 0) throw bad(file, "holds no LoRA weights");
  return modules;
}

/** A component's weight name for a module: `<module>.weight` (dotted) or by kohya's underscore name. */
export type TargetResolver = (m: LoraModule) => string | undefined;

/**
 * The resolver over a component's weight names: dotted modules directly, kohya names through the underscore form of
 * every `.weight` key, and through `aliases` (other names of the same key, e.g. the original SGM layout of an SDXL
 * UNet) in the same underscore form.
 */
export function targetResolver(weightNames: Iterable<string>): TargetResolver {
  const names = new Set(weightNames);
  const underscored = new Map<string, string>();
  for (const n of names) if (n.endsWith(".weight")) underscored.set(n.slice(0, -7).replace(/\./g, "_"), n);
  // UNet resnets per down block, for SGM-named modules (kohya's SDXL files): input_blocks_4_1_... -> down_blocks.1.attentions.0.
  const layersPerBlock = new Set([...names].flatMap((n) => /^down_blocks\.0\.resnets\.(\d+)\./.exec(n)?.[1] ?? [])).size;
  const sgm = (module: string): string | undefined => {
    const m = /^(input_blocks_\d+_\d+|output_blocks_\d+_\d+|middle_block_\d+)_(.+)$/.exec(module);
    if (!m || layersPerBlock === 0) return undefined;
    // The block path in dotted form; inside a resnet the original layer names carry an index (in_layers_2 -> in_layers.2).
    const rest = m[2].replace(/^(in_layers|out_layers|emb_layers)_(\d+)$/, "$1.$2");
    // ".weight" completes the path, so that a downsampler's "op" and an upsampler's "conv" are told from a layer name.
    const key = ldmUnetKey(`${m[1].replace(/_(\d+)/g, ".$1")}.${rest}.weight`, layersPerBlock);
    return key ? (names.has(key) ? key : underscored.get(key.slice(0, -7).replace(/\./g, "_"))) : undefined;
  };
  return (m) => {
    if (!m.kohya) return names.has(`${m.module}.weight`) ? `${m.module}.weight` : undefined;
    return underscored.get(m.module) ?? (m.component === "unet" ? sgm(m.module) : undefined);
  };
}

/** out[o, i] = sum_r up[o, r] * down[r, i], accumulated into `w` times `s` (row-major). */
function addLowRank(w: Float32Array, up: Float32Array, down: Float32Array, out: number, rank: number, inner: number, s: number): void {
  for (let o = 0; o < out; o++) {
    const row = o * inner;
    for (let r = 0; r < rank; r++) {
      const u = up[o * rank + r] * s;
      if (u === 0) continue;
      const d = r * inner;
      for (let i = 0; i < inner; i++) w[row + i] += u * down[d + i];
    }
  }
}

/** The merged value of `target` (float32): its weight plus every module's scaled low-rank delta. */
export function mergeTensor(base: TensorEntry, deltas: LoraDelta[]): Float32Array {
  const w = readTensorData(base);
  for (const { module: m, scale, file } of deltas) {
    const rank = m.down.shape[0];
    const inner = m.down.shape.slice(1).reduce((a, b) => a * b, 1);
    const out = m.up.shape[0];
    if (m.up.shape.slice(2).some((d) => d !== 1) || out * inner !== w.length) {
      throw bad(file, `${m.module}: up [${m.up.shape}] x down [${m.down.shape}] does not fit weight ${base.name} [${base.shape}]`);
    }
    const alpha = m.alpha ?? rank;
    addLowRank(w, readTensorData(m.up), readTensorData(m.down), out, rank, inner, (scale * alpha) / rank);
  }
  return w;
}

/** What a LoRA set does to one component: the merged tensors' file and entries. */
export interface MergedComponent {
  file: string;
  entries: Map<string, TensorEntry>;
}

const identity = (f: string) => {
  const s = statSync(f);
  return `${resolve(f)}:${s.size}:${s.mtimeMs}`;
};

export type LoraDelta = { module: LoraModule; scale: number; file: string };

/** The merged tensors a LoRA set makes for one component, and the cache file they go to. */
export interface LoraMergePlan {
  component: string;
  file: string;
  /** Weight key -> the deltas added to it, in order. */
  targets: Map<string, LoraDelta[]>;
}

export interface LoraMergeInput {
  component: string;
  index: Map<string, TensorEntry>;
  weightFiles: string[];
  choices: readonly LoraChoice[];
  cacheDir: string;
  resolveTarget?: TargetResolver;
  /** Called once per module applied (so a caller can check that every module of a set found its component). */
  onApplied?: (file: string, m: LoraModule) => void;
}

/**
 * Which weights of `component` the LoRA set changes and where their merged values are kept:
 * `<cacheDir>/lora-<component>-<key>.safetensors`, the key covering the component's weight files, each LoRA file and
 * its scale. Undefined when no choice touches the component.
 */
export function planLoraMerge(opts: LoraMergeInput): LoraMergePlan | undefined {
  const resolveTarget = opts.resolveTarget ?? targetResolver(opts.index.keys());
  const targets = new Map<string, LoraDelta[]>();
  for (const c of opts.choices) {
    for (const m of readLoraFile(c.file)) {
      if (m.component !== opts.component) continue;
      const target = resolveTarget(m);
      if (!target || !opts.index.has(target)) {
        throw bad(c.file, `${m.component} module "${m.module}" (key ${m.down.name}) matches no weight of this model's ${opts.component} (a LoRA for another model family?)`);
      }
      targets.set(target, [...(targets.get(target) ?? []), { module: m, scale: c.scale, file: c.file }]);
      opts.onApplied?.(c.file, m);
    }
  }
  if (targets.size === 0) return undefined;
  const key = createHash("sha256")
    .update(JSON.stringify({ component: opts.component, weights: opts.weightFiles.map(identity).sort(), loras: opts.choices.map((c) => [identity(c.file), c.scale]) }))
    .digest("hex")
    .slice(0, 32);
  return { component: opts.component, file: join(resolve(opts.cacheDir), `lora-${opts.component}-${key}.safetensors`), targets };
}

/** Computes one merged tensor: the base weight plus its deltas, as float32. */
export type MergeFn = (base: TensorEntry, deltas: LoraDelta[]) => Float32Array | Promise<Float32Array>;

/** The merged file's 8-byte length and header (float32 tensors in plan order, 8-byte aligned like the reference writer). */
function mergedHeader(plan: LoraMergePlan, index: Map<string, TensorEntry>): Buffer {
  return safetensorsPrefix(
    [...plan.targets.keys()].map((name) => {
      const { shape } = index.get(name)!;
      return { name, dtype: "F32", shape, byteLength: shape.reduce((a, b) => a * b, 1) * 4 };
    }),
  );
}

const asBytes = (d: Float32Array) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/**
 * Writes the plan's merged tensors (float32) with `merge`, one tensor in memory at a time, to a temporary name and
 * renames it into place; a file already there is kept (same key, same values).
 */
export async function writeLoraMerge(plan: LoraMergePlan, index: Map<string, TensorEntry>, merge: MergeFn = mergeTensor): Promise<void> {
  if (existsSync(plan.file)) return;
  await writeFileThroughTempAsync(plan.file, async (fd) => {
    writeSync(fd, mergedHeader(plan, index));
    for (const [n, deltas] of plan.targets) writeSync(fd, asBytes(await merge(index.get(n)!, deltas)));
  });
}

/**
 * Merges every module of `choices` that targets `component` into the weights `index` (see planLoraMerge) and returns
 * the merged tensors' entries. The engine normally wrote the file already, with onnxruntime doing the products
 * (engine/lora-merge.ts); when it has not, they are computed here in JavaScript: the same values, more slowly.
 */
export function mergeLorasIntoComponent(opts: LoraMergeInput): MergedComponent | undefined {
  const plan = planLoraMerge(opts);
  if (!plan) return undefined;
  if (!existsSync(plan.file)) {
    writeFileThroughTemp(plan.file, (fd) => {
      writeSync(fd, mergedHeader(plan, opts.index));
      for (const [n, deltas] of plan.targets) writeSync(fd, asBytes(mergeTensor(opts.index.get(n)!, deltas)));
    });
  }
  return { file: plan.file, entries: new Map(readSafetensorsHeader(plan.file).entries.map((e) => [e.name, e])) };
}

// ---------------------------------------------------------------------------------------------------------------
// The LoRA library: `<models>/loras/<name>.safetensors`

const LORA_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$/;

/** Names of the LoRA files in `lorasDir` (file names without `.safetensors`), sorted. */
export function listLoras(lorasDir: string): string[] {
  if (!existsSync(lorasDir)) return [];
  return readdirSync(lorasDir)
    .filter((n) => n.endsWith(".safetensors") && LORA_NAME_RE.test(n.slice(0, -".safetensors".length)))
    .map((n) => n.slice(0, -".safetensors".length))
    .sort();
}

/**
 * The file of LoRA `name` in `lorasDir`; names are file names without `.safetensors` (no paths, so a request can
 * only reach the library). Throws E_INPUT_INVALID naming the LoRAs there when there is no such file.
 */
export function resolveLora(lorasDir: string, name: string, param = "loras"): string {
  const file = join(resolve(lorasDir), `${name}.safetensors`);
  if (!LORA_NAME_RE.test(name) || name.includes("..") || !existsSync(file)) {
    const have = listLoras(lorasDir);
    throw new EaselError("E_INPUT_INVALID", `no LoRA named "${name}" in ${lorasDir}${have.length ? ` (there: ${have.join(", ")})` : " (it has none)"}`, {
      param,
      details: { available: have },
    });
  }
  return file;
}

/** A LoRA scale as requests give it: finite, within [-8, 8] (beyond that no LoRA produces a usable image). */
export function checkLoraScale(scale: number, param = "loras"): number {
  if (!Number.isFinite(scale) || scale < -8 || scale > 8) {
    throw new EaselError("E_INPUT_INVALID", `LoRA scale ${scale} is outside [-8, 8]`, { param });
  }
  return scale;
}

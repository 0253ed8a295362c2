/**
 * What a single-file checkpoint holds and where each tensor goes: its family from the key names and shapes
 * (diffusers' infer_diffusers_model_type rules), each component's tensors mapped to the diffusers layout
 * (./ldm-keys.ts, ./mmdit-keys.ts) with the configs of a diffusers folder, and every converted tensor checked
 * against the shapes those configs describe (./component-shapes.ts) before anything is written.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { EaselError } from "../core/errors.ts";
import type { TensorEntry } from "../graph/safetensors.ts";
import { expectedTensors } from "./component-shapes.ts";
import { type ConvertedTensor, convertOpenClip, convertPrefixed, hfClipKey, ldmUnetKey, ldmVaeKey, UNET_PREFIX, VAE_PREFIX, vaeReshape } from "./ldm-keys.ts";
import { convertMmdit, convertSd3ClipL, MMDIT_PREFIX, SD3_CLIP_G_PREFIX, SD3_CLIP_L_PREFIX, SD3_T5_PREFIX } from "./mmdit-keys.ts";
import { parsePythonJson } from "./python-json.ts";

/** A JSON file of a config folder (Python's JSON dialect); a missing one is the folder's fault. */
export function readConfigJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new EaselError("E_INPUT_INVALID", `${file} is missing`, { param: "config" });
  return parsePythonJson(readFileSync(file, "utf8")) as Record<string, unknown>;
}

export type SingleFileFamily = "sd15" | "sd2" | "sdxl" | "sd3";

const notSupported = (file: string, what: string) => new EaselError("E_NOT_SUPPORTED", `${file}: ${what}`, { details: { file } });

/** The family of a single-file checkpoint from its keys and shapes (diffusers' infer_diffusers_model_type rules). */
export function detectSingleFile(file: string, entries: TensorEntry[]): SingleFileFamily {
  const has = (prefix: string) => entries.some((e) => e.name.startsWith(prefix));
  // SD3 files hold the MMDiT under model.diffusion_model.; transformer-only files may hold it at the top level.
  if (has(`${MMDIT_PREFIX}joint_blocks.`) || has("joint_blocks.")) return "sd3";
  if (has("conditioner.embedders.0.model.")) throw notSupported(file, "an SDXL refiner single file; only SDXL base files are converted");
  if (has("conditioner.embedders.1.model.") || has(`${UNET_PREFIX}label_emb.`)) return "sdxl";
  if (has("cond_stage_model.model.")) return "sd2";
  const k = entries.find((e) => e.name === `${UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`);
  if (k?.shape[1] === 1024) return "sd2";
  if (has("cond_stage_model.transformer.") || k) return "sd15";
  throw new EaselError("E_CHECKPOINT_INVALID", `${file}: not a Stable Diffusion single-file checkpoint (no model.diffusion_model.* keys)`);
}

/** Which SD3 release a file is, from its blocks (SD3.5 adds qk norms, SD3.5 medium a second attention), and its diffusers repository. */
export function sd3Release(entries: TensorEntry[]): { label: string; repo: string } {
  const has = (re: RegExp) => entries.some((e) => re.test(e.name));
  if (has(/^(model\.diffusion_model\.)?joint_blocks\.\d+\.x_block\.attn2\./)) return { label: "SD3.5 medium", repo: "stabilityai/stable-diffusion-3.5-medium" };
  if (has(/^(model\.diffusion_model\.)?joint_blocks\.\d+\.x_block\.attn\.ln_q\./)) return { label: "SD3.5 large", repo: "stabilityai/stable-diffusion-3.5-large" };
  return { label: "SD3 medium", repo: "stabilityai/stable-diffusion-3-medium-diffusers" };
}

export const PIPELINE: Record<SingleFileFamily, RegExp> = {
  sd15: /^StableDiffusion(Img2Img|Inpaint)?Pipeline$/,
  sd2: /^StableDiffusion(Img2Img|Inpaint)?Pipeline$/,
  sdxl: /^StableDiffusionXL(Img2Img|Inpaint)?Pipeline$/,
  sd3: /^StableDiffusion3(Img2Img|Inpaint)?Pipeline$/,
};

export interface ComponentPlan {
  /** model_index name and the weight file name diffusers / transformers save. */
  name: string;
  weightFile: string;
  /** Where the component's tensors lie in the file. */
  prefix: string;
  convert: (config: Record<string, unknown>) => ConvertedTensor[];
}

const num = (c: Record<string, unknown>, k: string, file: string) => {
  const v = c[k];
  if (typeof v !== "number") throw new EaselError("E_CHECKPOINT_INVALID", `${file}: config ${k} is missing`);
  return v;
};

function plans(file: string, family: SingleFileFamily, entries: TensorEntry[]): ComponentPlan[] {
  const vae: ComponentPlan = {
    name: "vae",
    weightFile: "diffusion_pytorch_model.safetensors",
    prefix: VAE_PREFIX,
    convert: (c) => convertPrefixed(file, entries, VAE_PREFIX, (k) => ldmVaeKey(k, (c.block_out_channels as unknown[]).length), vaeReshape),
  };
  const clip = (name: string, prefix: string): ComponentPlan => ({ name, weightFile: "model.safetensors", prefix, convert: () => convertPrefixed(file, entries, prefix, hfClipKey) });
  if (family === "sd3") {
    const mmdit = entries.some((e) => e.name.startsWith(`${MMDIT_PREFIX}joint_blocks.`)) ? MMDIT_PREFIX : "";
    return [
      { name: "transformer", weightFile: "diffusion_pytorch_model.safetensors", prefix: mmdit, convert: () => convertMmdit(file, entries, mmdit) },
      vae,
      { name: "text_encoder", weightFile: "model.safetensors", prefix: SD3_CLIP_L_PREFIX, convert: () => convertSd3ClipL(file, entries) },
      clip("text_encoder_2", SD3_CLIP_G_PREFIX),
      { name: "text_encoder_3", weightFile: "model.safetensors", prefix: SD3_T5_PREFIX, convert: () => convertPrefixed(file, entries, SD3_T5_PREFIX, (k) => k) },
    ];
  }
  const unet: ComponentPlan = {
    name: "unet",
    weightFile: "diffusion_pytorch_model.safetensors",
    prefix: UNET_PREFIX,
    convert: (c) => convertPrefixed(file, entries, UNET_PREFIX, (k) => ldmUnetKey(k, num(c, "layers_per_block", "unet/config.json"))),
  };
  const openClip = (name: string, prefix: string, projection: boolean): ComponentPlan => ({
    name,
    weightFile: "model.safetensors",
    prefix,
    convert: (c) => convertOpenClip(file, entries, prefix, num(c, "num_hidden_layers", `${name}/config.json`)).filter((t) => projection || t.name !== "text_projection.weight"),
  });
  if (family === "sd15") return [unet, vae, clip("text_encoder", "cond_stage_model.transformer.")];
  if (family === "sd2") return [unet, vae, openClip("text_encoder", "cond_stage_model.model.", false)];
  return [unet, vae, clip("text_encoder", "conditioner.embedders.0.transformer."), openClip("text_encoder_2", "conditioner.embedders.1.model.", true)];
}

const fmt = (s: number[]) => `[${s.join(", ")}]`;

/**
 * Throws naming the first tensor the component's config has no place for, or no such shape, or that the file lacks:
 * a fine-tune of other widths or depths needs a folder of its own configs.
 */
function checkTensors(file: string, component: string, className: string, config: Record<string, unknown>, converted: ConvertedTensor[], where: string): void {
  let expected: ReturnType<typeof expectedTensors>;
  try {
    expected = expectedTensors(className, config);
  } catch (e) {
    throw new EaselError("E_INPUT_INVALID", `${where}: ${component}/config.json: ${(e as Error).message}`, { param: "config" });
  }
  if (!expected) return;
  const fail = (what: string, tensor: string) =>
    new EaselError(
      "E_INPUT_INVALID",
      `${basename(file)} does not fit ${where}: ${what}; pass --config DIR, a diffusers folder with this model's own configs (model_index.json, component configs, scheduler and tokenizers)`,
      { param: "config", details: { file, component, tensor } },
    );
  const seen = new Set<string>();
  // In the order of the original keys, as the reference writer sorts a header.
  for (const t of [...converted].sort((a, b) => (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : 0))) {
    seen.add(t.name);
    const want = expected.shapes.get(t.name);
    if (!want) throw fail(`tensor ${t.source.name} becomes ${component} ${t.name}, which ${component}/config.json has no place for`, t.source.name);
    if (fmt(want) !== fmt(t.shape)) throw fail(`tensor ${t.source.name} (${component} ${t.name}) is ${fmt(t.shape)} where ${component}/config.json makes it ${fmt(want)}`, t.source.name);
  }
  const optional = new Set(expected.optional.flat());
  for (const name of expected.shapes.keys()) {
    if (!seen.has(name) && !optional.has(name)) throw fail(`the file has no tensor for ${component} ${name}, which ${component}/config.json has`, name);
  }
  for (const group of expected.optional) {
    if (!group.some((n) => seen.has(n))) throw fail(`the file has no tensor for ${component} ${group.join(" or ")}`, group[0]);
  }
}

export interface PreparedComponent {
  plan: ComponentPlan;
  /** Empty when the file lacks the component. */
  converted: ConvertedTensor[];
}

export interface Prepared {
  modelIndex: Record<string, unknown>;
  components: PreparedComponent[];
}

/**
 * Maps the file's tensors with the configs of `configDir` (a diffusers folder of the family; `where` names it in
 * errors) and checks them against those configs. Components the folder's model_index.json lists as absent are left
 * out when the file has none of them either.
 */
export function prepareConversion(file: string, family: SingleFileFamily, entries: TensorEntry[], configDir: string, where: string = configDir): Prepared {
  const modelIndex = readConfigJson(join(configDir, "model_index.json"));
  if (typeof modelIndex._class_name !== "string" || !PIPELINE[family].test(modelIndex._class_name)) {
    throw new EaselError("E_INPUT_INVALID", `${where} is a ${String(modelIndex._class_name)}, not a ${family} pipeline folder`, { param: "config" });
  }
  const components: PreparedComponent[] = [];
  for (const plan of plans(file, family, entries)) {
    const spec = modelIndex[plan.name];
    const inFile = entries.some((e) => e.name.startsWith(plan.prefix));
    if (!Array.isArray(spec) || spec[0] === null || typeof spec[1] !== "string") {
      if (!inFile) continue;
      throw new EaselError("E_INPUT_INVALID", `${basename(file)} holds ${plan.name} weights (${plan.prefix}*), but ${where}/model_index.json has no ${plan.name}: give --config a folder that has one`, {
        param: "config",
      });
    }
    const config = readConfigJson(join(configDir, plan.name, "config.json"));
    const converted = plan.convert(config);
    if (converted.length > 0) checkTensors(file, plan.name, spec[1], config, converted, where);
    components.push({ plan, converted });
  }
  return { modelIndex, components };
}

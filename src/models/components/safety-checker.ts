/**
 * The image safety checker of SD1.x checkpoints (diffusers StableDiffusionSafetyChecker) run on generated images:
 * find the checker (the checkpoint's `safety_checker` + `feature_extractor` components, or a separately configured
 * folder), preprocess like transformers' CLIPImageProcessor, run the graph (safety-checker.graph.ts), and score each
 * image with diffusers' rule:
 *   special_score[c] = round(special_cos[c] - special_care_embeds_weights[c] + adjustment, 3), adjustment starting at
 *   0 per image and becoming 0.01 once a special score is > 0;
 *   concept_score[c] = round(cos[c] - concept_embeds_weights[c] + adjustment, 3); flagged when any concept score > 0.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { EaselError } from "../../core/errors.ts";
import { createSession, type ModelSession } from "../../runtime/session.ts";
import type { PipelineImage } from "../pipeline/family.ts";
import { type PrepareComponentOptions, type PreparedModel, prepareComponent } from "./component.ts";
import { buildSafetyCheckerGraph, type SafetyCheckerConfig, safetyCheckerConfigFromJson } from "./safety-checker.graph.ts";

/** Bump when buildSafetyCheckerGraph's output changes, so cached graphs are rebuilt. */
export const SAFETY_CHECKER_GRAPH_VERSION = "safety-checker.1";

export function prepareSafetyChecker(dir: string, opts: PrepareComponentOptions): PreparedModel<SafetyCheckerConfig> {
  return prepareComponent(dir, opts, {
    component: "safety-checker",
    builderVersion: SAFETY_CHECKER_GRAPH_VERSION,
    parseConfig: safetyCheckerConfigFromJson,
    options: {},
    build: (cfg, weights) => buildSafetyCheckerGraph(cfg, weights),
  });
}

/** What CLIPImageProcessor does to an image, from `preprocessor_config.json`. */
export interface ClipImageProcessing {
  /** Resize so the shorter side is this (bicubic). */
  shortestEdge: number;
  cropHeight: number;
  cropWidth: number;
  rescale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** openai/clip-vit-large-patch14's processor, which every SD1.x feature_extractor copies. */
export const CLIP_PROCESSING: ClipImageProcessing = {
  shortestEdge: 224,
  cropHeight: 224,
  cropWidth: 224,
  rescale: 1 / 255,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

export function clipProcessingFromJson(json: Record<string, unknown>): ClipImageProcessing {
  const size = json.size as number | { shortest_edge?: number; height?: number } | undefined;
  const crop = json.crop_size as number | { height?: number; width?: number } | undefined;
  const shortestEdge = typeof size === "number" ? size : (size?.shortest_edge ?? size?.height ?? CLIP_PROCESSING.shortestEdge);
  const cropHeight = typeof crop === "number" ? crop : (crop?.height ?? shortestEdge);
  const cropWidth = typeof crop === "number" ? crop : (crop?.width ?? shortestEdge);
  const triple = (v: unknown, d: [number, number, number]) => (Array.isArray(v) && v.length === 3 ? (v as [number, number, number]) : d);
  return {
    shortestEdge,
    cropHeight,
    cropWidth,
    rescale: typeof json.rescale_factor === "number" ? json.rescale_factor : 1 / 255,
    mean: json.do_normalize === false ? [0, 0, 0] : triple(json.image_mean, CLIP_PROCESSING.mean),
    std: json.do_normalize === false ? [1, 1, 1] : triple(json.image_std, CLIP_PROCESSING.std),
  };
}

/**
 * One image as the checker's `pixel_values` [3, cropH, cropW]: shorter side resized to shortestEdge (bicubic; sharp's
 * cubic kernel stands in for PIL's, so values differ from transformers' by resampling error only), centre crop
 * (top = floor((h - cropH) / 2), as transformers), rescale, normalise.
 */
export async function clipPixelValues(img: PipelineImage, p: ClipImageProcessing): Promise<Float32Array> {
  const scale = p.shortestEdge / Math.min(img.width, img.height);
  const w = img.width <= img.height ? p.shortestEdge : Math.floor(img.width * scale);
  const h = img.height < img.width ? p.shortestEdge : Math.floor(img.height * scale);
  let rgb: Uint8Array = img.rgb;
  if (w !== img.width || h !== img.height) {
    rgb = await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize({ width: w, height: h, kernel: "cubic", fit: "fill" })
      .raw()
      .toBuffer();
  }
  const top = Math.floor((h - p.cropHeight) / 2);
  const left = Math.floor((w - p.cropWidth) / 2);
  const out = new Float32Array(3 * p.cropHeight * p.cropWidth);
  const plane = p.cropHeight * p.cropWidth;
  for (let y = 0; y < p.cropHeight; y++) {
    for (let x = 0; x < p.cropWidth; x++) {
      const sy = y + top;
      const sx = x + left;
      const inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
      for (let c = 0; c < 3; c++) {
        const v = inside ? rgb[(sy * w + sx) * 3 + c] : 0;
        out[c * plane + y * p.cropWidth + x] = (v * p.rescale - p.mean[c]) / p.std[c];
      }
    }
  }
  return out;
}

/** Python's round(x, 3) on a float (ties to even on the decimal value, which float inputs almost never hit). */
function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export interface SafetyVerdict {
  flagged: boolean;
  specialScores: number[];
  conceptScores: number[];
  /** Indices of the concepts with a score > 0. */
  badConcepts: number[];
}

/** diffusers StableDiffusionSafetyChecker.forward's scores for one image, from its cosine similarities. */
export function scoreSafety(specialCos: ArrayLike<number>, cos: ArrayLike<number>, specialWeights: ArrayLike<number>, conceptWeights: ArrayLike<number>): SafetyVerdict {
  let adjustment = 0;
  const specialScores: number[] = [];
  for (let c = 0; c < specialCos.length; c++) {
    const s = round3(specialCos[c] - specialWeights[c] + adjustment);
    specialScores.push(s);
    if (s > 0) adjustment = 0.01;
  }
  const conceptScores: number[] = [];
  const badConcepts: number[] = [];
  for (let c = 0; c < cos.length; c++) {
    const s = round3(cos[c] - conceptWeights[c] + adjustment);
    conceptScores.push(s);
    if (s > 0) badConcepts.push(c);
  }
  return { flagged: badConcepts.length > 0, specialScores, conceptScores, badConcepts };
}

export interface SafetyCheckerLocation {
  /** Folder with the checker's config.json and weights. */
  dir: string;
  /** preprocessor_config.json, when there is one (else CLIP_PROCESSING). */
  preprocessor?: string;
}

/**
 * Where a checkpoint's checker is: its `safety_checker` component (model_index.json entry not null, folder present),
 * else `configured` (a folder like CompVis/stable-diffusion-safety-checker: config.json, weights,
 * preprocessor_config.json). Undefined when there is none.
 */
export function findSafetyChecker(modelDir: string, configured?: string): SafetyCheckerLocation | undefined {
  let index: Record<string, unknown> = {};
  try {
    index = JSON.parse(readFileSync(join(modelDir, "model_index.json"), "utf8")) as Record<string, unknown>;
  } catch {
    index = {};
  }
  const entry = index.safety_checker;
  const listed = Array.isArray(entry) && entry[0] !== null && entry[1] !== null;
  if (listed && existsSync(join(modelDir, "safety_checker", "config.json"))) {
    const pre = join(modelDir, "feature_extractor", "preprocessor_config.json");
    return { dir: join(modelDir, "safety_checker"), preprocessor: existsSync(pre) ? pre : undefined };
  }
  if (configured) {
    if (!existsSync(join(configured, "config.json"))) {
      throw new EaselError("E_CHECKPOINT_INVALID", `safety.checkerDir ${configured}: no config.json (a StableDiffusionSafetyChecker folder is expected)`);
    }
    const pre = join(configured, "preprocessor_config.json");
    return { dir: configured, preprocessor: existsSync(pre) ? pre : undefined };
  }
  return undefined;
}

export interface LoadedSafetyChecker {
  check(images: PipelineImage[]): Promise<SafetyVerdict[]>;
  release(): Promise<void>;
}

export async function loadSafetyChecker(
  loc: SafetyCheckerLocation,
  opts: PrepareComponentOptions & { intraOpThreads?: number },
): Promise<LoadedSafetyChecker> {
  const prepared = prepareSafetyChecker(loc.dir, opts);
  const { imageSize } = prepared.config;
  // Without a preprocessor_config.json: CLIP's normalisation at the checker's own input size.
  const processing = loc.preprocessor
    ? clipProcessingFromJson(JSON.parse(readFileSync(loc.preprocessor, "utf8")))
    : { ...CLIP_PROCESSING, shortestEdge: imageSize, cropHeight: imageSize, cropWidth: imageSize };
  if (processing.cropHeight !== imageSize || processing.cropWidth !== imageSize) {
    throw new EaselError("E_CHECKPOINT_INVALID", `${loc.preprocessor}: crop_size ${processing.cropHeight}x${processing.cropWidth} does not match the checker's image_size ${imageSize}`);
  }
  const session: ModelSession = await createSession(prepared.modelPath, { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads });
  return {
    async check(images) {
      if (images.length === 0) return [];
      const per = 3 * imageSize * imageSize;
      const pixels = new Float32Array(images.length * per);
      for (const [i, img] of images.entries()) pixels.set(await clipPixelValues(img, processing), i * per);
      const out = await session.run({ pixel_values: { data: pixels, shape: [images.length, 3, imageSize, imageSize] } });
      const special = out.special_cos_dist.data as Float32Array;
      const cos = out.cos_dist.data as Float32Array;
      const sw = out.special_thresholds.data as Float32Array;
      const cw = out.concept_thresholds.data as Float32Array;
      const ns = sw.length;
      const nc = cw.length;
      return images.map((_, i) => scoreSafety(special.subarray(i * ns, (i + 1) * ns), cos.subarray(i * nc, (i + 1) * nc), sw, cw));
    },
    release: () => session.release(),
  };
}

/** diffusers' replacement for a flagged image: all zeros (black), same size. */
export function blackImage(img: PipelineImage): PipelineImage {
  return { width: img.width, height: img.height, rgb: new Uint8Array(img.rgb.length) };
}

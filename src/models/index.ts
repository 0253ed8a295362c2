/**
 * Model families the local engine can run, one line each, in detection order: the first family whose detect()
 * accepts a checkpoint runs it (Playground v2.5 before SDXL: it is an SDXL pipeline with an EDM scheduler).
 */
import type { Checkpoint } from "../checkpoint/checkpoint.ts";
import { EaselError } from "../core/errors.ts";
import type { ModelFamily } from "./pipeline/family.ts";
import { sd3Family } from "./sd3/index.ts";
import { sd15Family } from "./sd15/index.ts";
import { playgroundFamily, sdxlFamily } from "./sdxl/index.ts";

export const FAMILIES: readonly ModelFamily[] = [sd15Family, playgroundFamily, sdxlFamily, sd3Family];

/** Named in the error for a checkpoint no family runs. */
const SUPPORTED_CLASSES = "StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusion3Pipeline";

export function familyById(id: string): ModelFamily | undefined {
  return FAMILIES.find((f) => f.id === id);
}

/** The family that runs a checkpoint, after checking the components it requires. */
export function familyFor(ckpt: Checkpoint): ModelFamily {
  const family = FAMILIES.find((f) => f.detect(ckpt));
  const indexFile = `${ckpt.dir}/model_index.json`;
  if (!family) {
    throw new EaselError("E_NOT_SUPPORTED", `${indexFile}: pipeline class "${ckpt.pipelineClass}" is not supported (supported: ${SUPPORTED_CLASSES})`, {
      details: { file: indexFile, pipelineClass: ckpt.pipelineClass },
    });
  }
  for (const name of family.required) {
    if (!ckpt.components[name] && !ckpt.tokenizers[name]) {
      throw new EaselError("E_NOT_SUPPORTED", `${indexFile}: ${ckpt.pipelineClass} without "${name}" is not supported by the ${family.id} family`, {
        details: { file: indexFile, component: name },
      });
    }
  }
  family.validate?.(ckpt);
  return family;
}

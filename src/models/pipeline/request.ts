/**
 * The one translation of a GenerationRequest into a pipeline's parameters, shared by the local provider and
 * `easel generate`: every request field reaches the pipeline the same way, whoever asked.
 */
import type { GenerationRequest } from "../../core/types.ts";
import type { PipelineParams } from "./family.ts";

export interface RequestRunInputs {
  /** The seed the caller resolved (a request without one gets a random seed before it runs). */
  seed: number;
  /** The request's init image decoded to CHW RGB in [-1, 1] at the output size. */
  initImage?: PipelineParams["initImage"];
  /** The request's inpainting mask decoded and binarised at the output size (1 = repaint). */
  mask?: PipelineParams["mask"];
  /** The request's LoRAs with their files resolved (the caller knows the LoRA folder). */
  loras?: PipelineParams["loras"];
}

export function toPipelineParams(req: GenerationRequest, run: RequestRunInputs): PipelineParams {
  return {
    prompt: req.prompt,
    negativePrompt: req.negativePrompt,
    prompt2: req.prompt2,
    negativePrompt2: req.negativePrompt2,
    prompt3: req.prompt3,
    negativePrompt3: req.negativePrompt3,
    n: req.n,
    width: req.width,
    height: req.height,
    steps: req.steps,
    guidanceScale: req.guidanceScale,
    guidanceRescale: req.guidanceRescale,
    scheduler: req.scheduler,
    seed: run.seed,
    initImage: run.initImage,
    ...(run.mask ? { mask: run.mask } : {}),
    // Undefined lets the family pick diffusers' default (0.8 for SD1.x, 0.3 for SDXL and Playground, 0.6 for SD3).
    strength: run.initImage ? req.strength : undefined,
    clipSkip: req.clipSkip,
    maxSequenceLength: req.maxSequenceLength,
    useT5: req.useT5,
    previews: req.partialImages ?? 0,
    ...(run.loras && run.loras.length > 0 ? { loras: run.loras } : {}),
  };
}

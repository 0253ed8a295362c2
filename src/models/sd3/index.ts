/** Stable Diffusion 3 / 3.5 (StableDiffusion3Pipeline): an MMDiT over flow matching, two CLIPs and optional T5. */
import { EaselError } from "../../core/errors.ts";
import type { ModelFamily } from "../pipeline/family.ts";
import { sd3Defaults, sd3Limits, sd3Variant } from "./config.ts";
import { loadSd3 } from "./pipeline.ts";

const PIPELINES = new Set(["StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"]);

export const sd3Family: ModelFamily = {
  id: "sd3",
  detect: (ckpt) => PIPELINES.has(ckpt.pipelineClass),
  required: ["text_encoder", "text_encoder_2", "transformer", "vae", "tokenizer", "tokenizer_2"],
  validate(ckpt) {
    if (Boolean(ckpt.components.text_encoder_3) !== Boolean(ckpt.tokenizers.tokenizer_3)) {
      throw new EaselError("E_CHECKPOINT_INVALID", `${ckpt.dir}/model_index.json: text_encoder_3 and tokenizer_3 must be both present or both null`, {
        details: { file: `${ckpt.dir}/model_index.json` },
      });
    }
  },
  kind: () => "flow",
  limits: sd3Limits,
  defaults: sd3Defaults,
  aliases: (ckpt) => (sd3Variant(ckpt) === "sd3-medium" ? ["sd3"] : ["sd3_5", "sd3.5"]),
  load: (ckpt, rt) => loadSd3(ckpt, rt),
};

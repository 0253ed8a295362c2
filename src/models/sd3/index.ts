import type { ModelFamily } from "../pipeline/family.ts";
import { sd3Defaults, sd3Variant } from "./config.ts";
import { loadSd3 } from "./pipeline.ts";

export const sd3Family: ModelFamily = {
  id: "sd3",
  aliases: (ckpt) => (sd3Variant(ckpt) === "sd3-medium" ? ["sd3"] : ["sd3_5", "sd3.5"]),
  defaults: sd3Defaults,
  load: (ckpt, rt) => loadSd3(ckpt, rt),
};

/**
 * The model that ships with Easel (models/easel-shapes in the package: a small text-to-image model trained by the
 * project on synthetic images of flat shapes; tools/train-default-model retrains it). Always registered, and the
 * default wherever a request may leave the model out, unless the configuration names another default.
 */
import { fileURLToPath } from "node:url";

export const BUILTIN_MODEL = {
  id: "easel-shapes",
  dir: fileURLToPath(new URL("../../models/easel-shapes", import.meta.url)),
  description:
    "Easel's own small model (about 2.5 M parameters, 128x128): one or two flat shapes (circle, square, triangle, star) " +
    "in 12 colours, three sizes and nine positions on a flat background, trained by the project on synthetic images. " +
    "Add real diffusers checkpoints to the models directory for anything else.",
} as const;

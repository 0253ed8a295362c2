/**
 * Cheap previews: a per-pixel linear map from model-space latents to RGB (the factors ComfyUI's
 * Latent2RGBPreviewer uses; MODELS.md §6.2), upscaled 8x nearest so the frame has the image's size.
 */
import type { PipelineImage } from "./family.ts";

export interface LatentRgbFactors {
  /** [channel][r, g, b] */
  weights: readonly (readonly [number, number, number])[];
  bias?: readonly [number, number, number];
}

/** x0 [n, C, h, w] -> n RGB images of (8h, 8w). */
export function latentPreview(x0: Float32Array, shape: readonly number[], f: LatentRgbFactors, upscale = 8): PipelineImage[] {
  const [n, c, h, w] = shape;
  if (f.weights.length !== c) throw new Error(`preview factors are for ${f.weights.length} channels, latents have ${c}`);
  const out: PipelineImage[] = [];
  const H = h * upscale;
  const W = w * upscale;
  for (let b = 0; b < n; b++) {
    const small = new Uint8Array(h * w * 3);
    for (let i = 0; i < h * w; i++) {
      for (let k = 0; k < 3; k++) {
        let v = f.bias ? f.bias[k] : 0;
        for (let ch = 0; ch < c; ch++) v += x0[((b * c + ch) * h * w) + i] * f.weights[ch][k];
        small[i * 3 + k] = Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
      }
    }
    const rgb = new Uint8Array(H * W * 3);
    for (let y = 0; y < H; y++) {
      const sy = Math.floor(y / upscale);
      for (let x = 0; x < W; x++) {
        const s = (sy * w + Math.floor(x / upscale)) * 3;
        const d = (y * W + x) * 3;
        rgb[d] = small[s];
        rgb[d + 1] = small[s + 1];
        rgb[d + 2] = small[s + 2];
      }
    }
    out.push({ width: W, height: H, rgb });
  }
  return out;
}

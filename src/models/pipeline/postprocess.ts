/** From VAE output to 8-bit pixels, as diffusers' image processor does it. */
import type { PipelineImage } from "./family.ts";

/** numpy's round-half-to-even, which `(x * 255).round()` uses. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** decoded [n, 3, H, W] about [-1, 1] -> n RGB images, clamp(x / 2 + 0.5, 0, 1) * 255 rounded half to even. */
export function decodedToImages(decoded: Float32Array, n: number, height: number, width: number): PipelineImage[] {
  const plane = height * width;
  const images: PipelineImage[] = [];
  for (let b = 0; b < n; b++) {
    const rgb = new Uint8Array(plane * 3);
    const base = b * 3 * plane;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < plane; i++) {
        // Float32 arithmetic like torch's, so values on a rounding boundary land where diffusers puts them.
        const x = Math.fround(Math.fround(decoded[base + c * plane + i] / 2) + 0.5);
        const v = Math.min(1, Math.max(0, x));
        rgb[i * 3 + c] = roundHalfEven(Math.fround(v * 255));
      }
    }
    images.push({ width, height, rgb });
  }
  return images;
}

/** Image comparisons for pipeline parity tests. */
import assert from "node:assert/strict";
import sharp from "sharp";

/** Fraction of 8-bit values within one level of the reference PNG (the reference README's image tolerance). */
export async function withinOneLevel(img: { width: number; height: number; rgb: Uint8Array }, pngPath: string): Promise<number> {
  const ref = await sharp(pngPath).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(ref.info.width, img.width);
  assert.equal(ref.info.height, img.height);
  let ok = 0;
  for (let i = 0; i < img.rgb.length; i++) if (Math.abs(img.rgb[i] - ref.data[i]) <= 1) ok++;
  return ok / img.rgb.length;
}

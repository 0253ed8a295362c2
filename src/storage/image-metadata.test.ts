/**
 * Generation parameters in encoded images, read back by libvips (sharp's metadata), an independent reader: the PNG
 * `parameters` text chunk (tEXt for Latin-1, iTXt otherwise), JPEG/WebP EXIF UserComment and XMP.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { formatInfotext } from "../core/image-format.ts";
import { encodeImage, transcodeImage } from "./image-codec.ts";

const W = 16;
const H = 8;
const rgb = new Uint8Array(W * H * 3).map((_, i) => (i * 37) % 256);

const ASCII = formatInfotext({
  prompt: "a red circle, on blue",
  negativePrompt: "blurry",
  steps: 20,
  sampler: "DPM++ 2M",
  scheduleType: "Karras",
  cfgScale: 7,
  seed: 1234,
  width: W,
  height: H,
  model: "sd15",
});

test("infotext is A1111's layout: prompt, Negative prompt line, then Key: value pairs; values with commas quoted", () => {
  assert.equal(
    ASCII,
    "a red circle, on blue\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 16x8, Model: sd15",
  );
  const t = formatInfotext({ prompt: "p", seed: 1, width: 8, height: 8, model: "m, v2", cfgScale: 7.5, clipSkip: 2, denoisingStrength: 0.75 });
  assert.equal(t, 'p\nCFG scale: 7.5, Seed: 1, Size: 8x8, Model: "m, v2", Denoising strength: 0.75, Clip skip: 2');
});

for (const text of [ASCII, "ein Kätzchen\nSteps: 4, Seed: 1, Size: 16x8, Model: m", "猫 🐈\nNegative prompt: 犬\nSteps: 4, Seed: 1, Size: 16x8, Model: m"]) {
  test(`PNG carries a parameters text chunk that reads back unchanged (${JSON.stringify(text.slice(0, 12))})`, async () => {
    const enc = await encodeImage({ width: W, height: H, rgb }, { format: "png", parameters: text });
    const meta = await sharp(enc.bytes).metadata();
    assert.deepEqual(meta.comments, [{ keyword: "parameters", text }]);
    // ASCII in tEXt (as A1111 writes it), anything else in iTXt; the chunk sits before the image data.
    const type = /[^\x20-\x7e\n]/.test(text) ? "iTXt" : "tEXt";
    const raw = Buffer.from(enc.bytes);
    const at = raw.indexOf(`${type}parameters\0`, 0, "latin1");
    assert.ok(at > 0 && at < raw.indexOf("IDAT", 0, "latin1"), `no ${type} chunk before IDAT`);
    // The pixels are the ones encoded.
    const { data } = await sharp(enc.bytes).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual(new Uint8Array(data), rgb);
  });
}

test("PNG without parameters has no text chunk", async () => {
  const enc = await encodeImage({ width: W, height: H, rgb }, { format: "png" });
  assert.equal((await sharp(enc.bytes).metadata()).comments, undefined);
});

/** The EXIF UserComment value: an 8-byte character-code prefix, then the text. */
function userComment(exif: Buffer): string {
  const at = exif.indexOf(Buffer.from("ASCII\0\0\0", "latin1"));
  assert.ok(at > 0, "no ASCII UserComment in the EXIF block");
  const end = exif.indexOf(0, at + 8);
  return exif.toString("latin1", at + 8, end < 0 ? exif.length : end);
}

for (const format of ["jpeg", "webp"] as const) {
  test(`${format} carries the parameters in EXIF UserComment and XMP`, async () => {
    const enc = await encodeImage({ width: W, height: H, rgb }, { format, parameters: ASCII });
    const meta = await sharp(enc.bytes).metadata();
    assert.ok(meta.exif, "no EXIF");
    assert.equal(userComment(meta.exif), ASCII);
    assert.ok(meta.xmp, "no XMP");
    const xmp = meta.xmp.toString("utf8");
    assert.match(xmp, /<exif:UserComment>/);
    assert.ok(xmp.includes("a red circle, on blue\nNegative prompt: blurry\nSteps: 20"), xmp);
  });

  test(`${format}: non-ASCII text is exact in XMP (EXIF UserComment is ASCII only in libvips)`, async () => {
    const text = "猫 & <dog>\nSteps: 4, Seed: 1, Size: 16x8, Model: m";
    const enc = await encodeImage({ width: W, height: H, rgb }, { format, parameters: text });
    const xmp = (await sharp(enc.bytes).metadata()).xmp?.toString("utf8") ?? "";
    assert.ok(xmp.includes("猫 &amp; &lt;dog&gt;\nSteps: 4"), xmp);
  });
}

test("an upstream PNG kept as it is gets the chunk; one re-encoded to PNG too", async () => {
  const plain = await encodeImage({ width: W, height: H, rgb }, { format: "png" });
  const kept = await transcodeImage(plain.bytes, { format: "png", parameters: ASCII });
  assert.deepEqual((await sharp(kept.bytes).metadata()).comments, [{ keyword: "parameters", text: ASCII }]);
  const jpeg = await encodeImage({ width: W, height: H, rgb }, { format: "jpeg" });
  const png = await transcodeImage(jpeg.bytes, { format: "png", parameters: ASCII });
  assert.deepEqual((await sharp(png.bytes).metadata()).comments, [{ keyword: "parameters", text: ASCII }]);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { decodeInitImage, decodeMask } from "./index.ts";

const solid = () => sharp({ create: { width: 16, height: 16, channels: 3, background: "#336699" } });

test("the local executor decodes PNG, JPEG and WebP init images to CHW in [-1, 1]", async () => {
  for (const bytes of [await solid().png().toBuffer(), await solid().jpeg().toBuffer(), await solid().webp().toBuffer()]) {
    const img = await decodeInitImage(new Uint8Array(bytes), 8, 8);
    assert.deepEqual([img.width, img.height, img.data.length], [8, 8, 3 * 64]);
    assert.ok(Math.abs(img.data[0] - (0x33 / 127.5 - 1)) < 0.05);
  }
});

test("the local executor refuses any other format before a decoder sees it (a job may come from another node)", async () => {
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>');
  for (const bytes of [svg, await solid().gif().toBuffer(), await solid().tiff().toBuffer(), await solid().heif({ compression: "av1" }).toBuffer()]) {
    await assert.rejects(decodeInitImage(new Uint8Array(bytes), 8, 8), (e: Error & { code?: string; param?: string }) => {
      assert.equal(e.code, "E_INPUT_INVALID");
      assert.equal(e.param, "init_image");
      assert.match(e.message, /PNG, JPEG or WebP/);
      return true;
    });
  }
});

test("an inpainting mask is read as grayscale at the output size and binarised at half (1 = repaint), as diffusers' mask processor does", async () => {
  // Left half white (repaint), right half a grey just under half: kept.
  const raw = Buffer.alloc(16 * 16);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) raw[y * 16 + x] = x < 8 ? 255 : 120;
  const png = await sharp(raw, { raw: { width: 16, height: 16, channels: 1 } }).png().toBuffer();
  const mask = await decodeMask(new Uint8Array(png), 8, 8);
  assert.deepEqual([mask.width, mask.height, mask.data.length], [8, 8, 64]);
  for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) assert.equal(mask.data[y * 8 + x], x < 4 ? 1 : 0, `(${x}, ${y})`);
  // An RGB mask is read through its luminance; anything but PNG, JPEG or WebP is refused under the mask's name.
  const rgb = await decodeMask(new Uint8Array(await solid().png().toBuffer()), 4, 4);
  assert.ok(rgb.data.every((v) => v === 0), "#336699 is darker than half");
  await assert.rejects(decodeMask(new Uint8Array(await solid().gif().toBuffer()), 4, 4), (e: Error & { param?: string }) => e.param === "mask");
});

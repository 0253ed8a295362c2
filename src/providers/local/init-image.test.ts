import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { decodeInitImage } from "./index.ts";

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

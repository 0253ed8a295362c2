/**
 * Uploaded init images are accepted only as PNG, JPEG or WebP (sniffed by their magic bytes before any decoder sees
 * them) and only up to a pixel count, whatever their header claims.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

const url = "/api/models/external/v1";
const small = { prompt: "a lighthouse", width: 64, height: 64 };
const solid = () => sharp({ create: { width: 16, height: 16, channels: 3, background: "#336699" } });

const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="red"/></svg>');

/** A valid PNG whose IHDR claims `w` x `h` (the CRC recomputed, so decoders read the header as genuine). */
async function pngClaiming(w: number, h: number): Promise<Buffer> {
  const png = Buffer.from(await solid().png().toBuffer());
  png.writeUInt32BE(w, 16);
  png.writeUInt32BE(h, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

describe("init_image", async () => {
  const { app, images } = await makeApp();

  test("PNG, JPEG and WebP are accepted", async () => {
    for (const bytes of [await solid().png().toBuffer(), await solid().jpeg().toBuffer(), await solid().webp().toBuffer()]) {
      await expectOk(app, { url, payload: { ...small, init_image: bytes.toString("base64"), strength: 0.5 }, headers: AUTH });
      assert.deepEqual(Buffer.from(images.calls.at(-1)!.req.initImage!), bytes);
    }
  });

  test("SVG, HEIF (AVIF), GIF and TIFF are refused before anything runs, naming the accepted formats", async () => {
    const others = {
      svg: SVG,
      heif: await solid().heif({ compression: "av1" }).toBuffer(),
      gif: await solid().gif().toBuffer(),
      tiff: await solid().tiff().toBuffer(),
    };
    for (const [name, bytes] of Object.entries(others)) {
      const { body } = await expectRejected(app, images, { url, payload: { ...small, init_image: bytes.toString("base64") }, headers: AUTH }, 400);
      assert.equal(body.code, "INVALID_PARAMETER", name);
      assert.equal(body.param, "init_image", name);
      assert.match(String(body.error), /PNG, JPEG or WebP/, name);
    }
  });

  test("an image whose header claims more pixels than allowed is refused without decoding it", async () => {
    const { body } = await expectRejected(
      app,
      images,
      { url, payload: { ...small, init_image: (await pngClaiming(12000, 12000)).toString("base64") }, headers: AUTH },
      400,
    );
    assert.equal(body.param, "init_image");
    assert.match(String(body.error), /12000x12000/);
  });

  test("a truncated PNG (magic bytes only) is refused", async () => {
    const png = await solid().png().toBuffer();
    await expectRejected(app, images, { url, payload: { ...small, init_image: png.subarray(0, 12).toString("base64") }, headers: AUTH }, 400);
  });
});

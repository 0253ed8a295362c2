/** Request bodies are limited per route: small on JSON-only routes, larger only where an image is uploaded. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import sharp from "sharp";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

const url = "/api/models/external/v1";
const small = { prompt: "a lighthouse", width: 64, height: 64 };

describe("body limits per route", async () => {
  const { app, images } = await makeApp({}, { server: { jsonBodyLimitBytes: 4096, imageBodyLimitBytes: 64 * 1024 } });
  const padding = "p".repeat(8000);

  test("JSON-only routes refuse a body past the JSON limit, in their own shape", async () => {
    const cases = [
      { url: "/v1/images/generations", headers: AUTH, payload: { prompt: padding } },
      { url: "/v1/image/gen/playground", headers: AUTH, payload: { prompt: padding } },
      { url: "/v1/image/gen/sd", headers: AUTH, payload: { model: "sdxl", prompt: padding } },
      { url: "/v1/playground-v2.5", headers: { "x-api-key": "sk-test" }, payload: { prompt: padding } },
    ];
    for (const c of cases) {
      const { headers } = await expectRejected(app, images, c, 413);
      assert.equal(headers["x-easel-error-code"], "E_PAYLOAD_TOO_LARGE", c.url);
    }
  });

  test("the init_image route takes a body past the JSON limit, up to its own", async () => {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#000", noise: { type: "gaussian", mean: 128, sigma: 60 } } })
      .png()
      .toBuffer();
    assert.ok(png.length * 1.34 > 4096, "the upload is larger than the JSON limit");
    await expectOk(app, { url, payload: { ...small, init_image: png.toString("base64") }, headers: AUTH });
    const { body } = await expectRejected(app, images, { url, payload: { ...small, init_image: "A".repeat(70 * 1024) }, headers: AUTH }, 413);
    assert.equal(body.code, "PAYLOAD_TOO_LARGE");
  });
});

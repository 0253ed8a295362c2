/** Server composition: health while generating, OpenAPI + offline docs, signed files, body limit, unknown routes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AUTH, makeApp } from "./helpers.ts";

describe("server", async () => {
  test("/healthz answers while a generation is in flight", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { app, images } = await makeApp({ gate: () => gate });
    const pending = app.inject({ method: "POST", url: "/v1/images/generations", payload: { prompt: "x", size: "64x64" }, headers: AUTH });
    while (images.calls.length === 0) await new Promise((r) => setImmediate(r));
    const health = await app.inject({ method: "GET", url: "/healthz" });
    assert.equal(health.statusCode, 200);
    assert.deepEqual(health.json(), { status: "ok" });
    release();
    assert.equal((await pending).statusCode, 200);
  });

  test("OpenAPI document lists every dialect's route; the reference page is served locally", async () => {
    const { app } = await makeApp();
    const doc = (await app.inject({ method: "GET", url: "/openapi.json" })).json();
    for (const p of [
      "/v1/images/generations",
      "/api/llm/images/generations",
      "/v1/models",
      "/v1/image/gen/playground",
      "/v1/image/gen/sd",
      "/api/models/external/v1",
      "/v1/playground-v2.5",
      "/healthz",
      "/openapi.json",
      "/docs",
    ]) {
      assert.ok(doc.paths[p], `${p} documented`);
    }
    const sd = doc.paths["/v1/image/gen/sd"].post.requestBody.content["application/json"].schema;
    assert.deepEqual(sd.properties.model.enum, ["sdxl", "sd3", "sd3_5"]);
    const page = await app.inject({ method: "GET", url: "/docs/" });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /swagger-ui/i);
    assert.doesNotMatch(page.body, /https?:\/\/(cdn|unpkg|cdnjs)/, "no CDN assets");
    const js = await app.inject({ method: "GET", url: "/docs/static/swagger-ui-bundle.js" });
    assert.equal(js.statusCode, 200);
  });

  test("an unknown or forged file token is a bare 404", async () => {
    const { app } = await makeApp();
    const res = await app.inject({ method: "GET", url: "/v1/files/forged-token" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, "");
  });

  test("configured public base URL prefixes image URLs", async () => {
    const { app } = await makeApp({}, { server: { publicBaseUrl: "https://img.example.com/easel/" } });
    const res = await app.inject({ method: "POST", url: "/v1/image/gen/playground", payload: { prompt: "x" }, headers: AUTH });
    assert.match(res.json().data[0].url, /^https:\/\/img\.example\.com\/easel\/v1\/files\//);
  });

  test("a body over the limit is 413 in the dialect's shape", async () => {
    const { app, images } = await makeApp({}, { server: { imageBodyLimitBytes: 1024 } });
    const res = await app.inject({ method: "POST", url: "/api/models/external/v1", payload: { prompt: "p".repeat(4096) }, headers: AUTH });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().code, "PAYLOAD_TOO_LARGE");
    assert.equal(images.calls.length, 0);
  });

  test("paths outside every dialect answer Easel's own 404 shape", async () => {
    const { app } = await makeApp();
    const res = await app.inject({ method: "GET", url: "/nowhere" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, "E_NOT_FOUND");
  });
});

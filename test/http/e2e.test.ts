/** The e2e suite over the test image service, and what only the test service can show (client disconnects). */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { createApp } from "../../src/server/app.ts";
import { e2eSuite } from "./e2e-suite.ts";
import { FakeImageService } from "./fake-image-service.ts";
import { testConfig } from "./helpers.ts";

e2eSuite("e2e over the test image service", {
  async start() {
    const app = await createApp({ config: testConfig(), images: new FakeImageService({ keys: { "sk-e2e": null } }) });
    await app.listen({ host: "127.0.0.1", port: 0 });
    return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  },
  apiKey: "sk-e2e",
  model: "sd15",
  size: "64x64",
});

describe("client disconnect aborts the generation", () => {
  test("the request's signal fires when the socket closes", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const images = new FakeImageService({ keys: { k: null }, gate: () => gate });
    const app = await createApp({ config: testConfig(), images });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    const controller = new AbortController();
    const pending = fetch(`http://127.0.0.1:${port}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer k" },
      body: JSON.stringify({ prompt: "x", size: "64x64" }),
      signal: controller.signal,
    }).catch(() => undefined);
    while (images.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    const signal = images.calls[0].ctx.signal!;
    controller.abort();
    while (!signal.aborted) await new Promise((r) => setTimeout(r, 5));
    release();
    await pending;
    await app.close();
    assert.equal(signal.aborted, true);
  });
});

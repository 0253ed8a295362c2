/**
 * End to end on loopback: a running server driven by real clients (the `openai` SDK; plain fetch with the
 * providers' own example bodies). The server is a parameter, so the same suite runs over the test image service
 * (test/http/e2e.test.ts) and over the real engine and job service (test/e2e/real-engine.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import sharp from "sharp";
import { MONICA_PLAYGROUND_EXAMPLE, MONICA_SD_EXAMPLE, SEGMIND_EXAMPLE } from "./spec-examples.ts";

export interface E2eTarget {
  /** Starts a server on a loopback port; returns its base URL and how to stop it. */
  start(): Promise<{ base: string; close(): Promise<void> }>;
  apiKey: string;
  /** A model id the service has installed, and a small size it can generate quickly. */
  model: string;
  size: `${number}x${number}`;
  /** Why a dialect's example cannot run on this target (its model is not installed), if so. */
  skip?: { monicaSd?: string; monicaPlayground?: string; segmind?: string };
}

export function e2eSuite(name: string, target: E2eTarget): void {
  describe(name, () => {
    let base = "";
    let close: () => Promise<void> = async () => {};
    before(async () => {
      ({ base, close } = await target.start());
    });
    after(() => close());
    const client = () => new OpenAI({ apiKey: target.apiKey, baseURL: `${base}/v1`, maxRetries: 0 });

    test("openai SDK: url answer, then the URL downloads the image", async () => {
      const res = await client().images.generate({ prompt: "a lighthouse", model: target.model, size: target.size });
      const url = res.data?.[0]?.url;
      assert.ok(url?.startsWith(`${base}/v1/files/`), url);
      const file = await fetch(url!);
      assert.equal(file.status, 200);
      const meta = await sharp(Buffer.from(await file.arrayBuffer())).metadata();
      assert.equal(`${meta.width}x${meta.height}`, target.size);
    });

    test("openai SDK: b64_json, jpeg", async () => {
      const res = await client().images.generate({
        prompt: "a lighthouse",
        model: target.model,
        size: target.size,
        response_format: "b64_json",
        output_format: "jpeg",
        output_compression: 80,
      });
      const meta = await sharp(Buffer.from(res.data?.[0]?.b64_json ?? "", "base64")).metadata();
      assert.equal(meta.format, "jpeg");
    });

    test("openai SDK: streaming iterator yields partial images then completed", async () => {
      const stream = await client().images.generate({
        prompt: "a lighthouse",
        model: target.model,
        size: target.size,
        stream: true,
        partial_images: 2,
      });
      const types: string[] = [];
      let final = "";
      for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === "image_generation.partial_image") assert.equal(typeof ev.partial_image_index, "number");
        if (ev.type === "image_generation.completed") final = ev.b64_json;
      }
      assert.equal(types.at(-1), "image_generation.completed");
      assert.equal(types.filter((t) => t === "image_generation.partial_image").length, 2);
      assert.equal((await sharp(Buffer.from(final, "base64")).metadata()).format, "png");
    });

    test("openai SDK: errors surface as the SDK's typed errors", async () => {
      await assert.rejects(
        client().images.generate({ prompt: "x", model: "no-such-model" }),
        (e: unknown) => e instanceof OpenAI.NotFoundError && /no-such-model/.test(e.message),
      );
      const anon = new OpenAI({ apiKey: "sk-wrong", baseURL: `${base}/v1`, maxRetries: 0 });
      await assert.rejects(anon.images.generate({ prompt: "x" }), OpenAI.AuthenticationError);
    });

    const post = (path: string, body: unknown, headers: Record<string, string>) =>
      fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

    test("Monica playground: the page's curl body, string numbers included", { skip: target.skip?.monicaPlayground }, async () => {
      const auth = { authorization: `Bearer ${target.apiKey}` };
      const pg = await post(
        "/v1/image/gen/playground",
        MONICA_PLAYGROUND_EXAMPLE,
        auth,
      );
      assert.equal(pg.status, 200);
      const url = ((await pg.json()) as { data: { url: string }[] }).data[0].url;
      assert.equal((await fetch(url)).status, 200);
    });

    test("Monica SD: the page's curl body", { skip: target.skip?.monicaSd }, async () => {
      const auth = { authorization: `Bearer ${target.apiKey}` };
      const sd = await post(
        "/v1/image/gen/sd",
        MONICA_SD_EXAMPLE,
        auth,
      );
      assert.equal(sd.status, 200);
      const sdUrl = ((await sd.json()) as { data: { url: string }[] }).data[0].url;
      const img = await fetch(sdUrl);
      assert.equal((await sharp(Buffer.from(await img.arrayBuffer())).metadata()).format, "webp");
    });

    test("Segmind: the page's example body answers decodable JPEG bytes", { skip: target.skip?.segmind }, async () => {
      const res = await post(
        "/v1/playground-v2.5",
        SEGMIND_EXAMPLE,
        { "x-api-key": target.apiKey },
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "image/jpeg");
      assert.ok(res.headers.get("x-remaining-credits"));
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
      assert.equal(meta.format, "jpeg");
    });
  });
}


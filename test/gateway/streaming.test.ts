/**
 * Streaming through the gateway: OpenAI `stream: true` to an openai provider passes the upstream's partial images
 * through (the upstream is `easel serve` over the micro SD1.5 checkpoint, whose previews are real); through any
 * other provider the stream carries progress comments while the upstream works and ends with the completed images.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import sharp from "sharp";
import { bearer, type Gateway, post, startEngineUpstream, startFastUpstream, startGateway, type Upstream } from "./harness.ts";

let engine: Upstream;
let fast: Upstream;
let gw: Gateway;

before(async () => {
  [engine, fast] = await Promise.all([startEngineUpstream({ gw: null }), startFastUpstream({ gw: null })]);
  gw = await startGateway({
    providers: {
      easel: { type: "openai", baseUrl: `${engine.url}/v1`, apiKey: engine.keys.gw, easelExtensions: true },
      seg: { type: "segmind", baseUrl: fast.url, apiKey: fast.keys.gw },
    },
    models: {
      entries: {
        "remote-sd15": { provider: "easel", upstreamModel: "sd15" },
        "remote-pg": { provider: "seg", upstreamModel: "playground-v2.5" },
      },
    },
  });
});
after(async () => {
  await gw.close();
  await Promise.all([engine.close(), fast.close()]);
});

/** SSE blocks of a raw stream: comments and events. */
function blocks(text: string): { comments: string[]; events: { event: string; data: Record<string, unknown> }[] } {
  const comments: string[] = [];
  const events: { event: string; data: Record<string, unknown> }[] = [];
  for (const block of text.split("\n\n").filter((b) => b.trim() !== "")) {
    for (const line of block.split("\n")) if (line.startsWith(":")) comments.push(line.slice(1).trim());
    const event = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (event && data) events.push({ event, data: JSON.parse(data) });
  }
  return { comments, events };
}

describe("streaming through the gateway", () => {
  test("openai -> openai: the openai SDK receives the upstream's partial images, then the completed image", async () => {
    const client = new OpenAI({ apiKey: gw.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const params = { model: "remote-sd15", prompt: "a lighthouse", size: "64x64", stream: true, partial_images: 2, steps: 4 } as unknown as OpenAI.ImageGenerateParamsStreaming;
    const stream = await client.images.generate(params);
    const types: string[] = [];
    const partials: string[] = [];
    let final = "";
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === "image_generation.partial_image") partials.push(ev.b64_json);
      if (ev.type === "image_generation.completed") final = ev.b64_json;
    }
    assert.deepEqual(types, ["image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"]);
    for (const p of partials) assert.equal((await sharp(Buffer.from(p, "base64")).metadata()).format, "png");
    const meta = await sharp(Buffer.from(final, "base64")).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 64, 64]);
    const upstreamJob = (await (await fetch(`${engine.url}/v1/jobs?limit=1`, { headers: bearer(engine.keys.gw) })).json()) as {
      data: { dialect: string; params: { partialImages: number; steps: number } }[];
    };
    assert.equal(upstreamJob.data[0].dialect, "openai");
    assert.equal(upstreamJob.data[0].params.partialImages, 2, "the upstream was asked to stream");
    assert.equal(upstreamJob.data[0].params.steps, 4);
  });

  test("openai -> segmind: progress comments while the upstream works, then image_generation.completed", async () => {
    const res = await post(gw.url, "/v1/images/generations", { model: "remote-pg", prompt: "a lighthouse", stream: true, partial_images: 2 }, bearer(gw.key));
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get("content-type")), /^text\/event-stream/);
    const { comments, events } = blocks(await res.text());
    assert.ok(comments.includes("progress 0/1"), `comments: ${comments.join(" | ")}`);
    assert.deepEqual(events.map((e) => e.event), ["image_generation.completed"]);
    const meta = await sharp(Buffer.from(String(events[0].data.b64_json), "base64")).metadata();
    assert.deepEqual([meta.format, meta.width], ["png", 1024]);
    const jobs = (await (await fetch(`${gw.url}/v1/jobs?limit=1`, { headers: bearer(gw.key) })).json()) as { data: { warnings: { code: string; param: string }[] }[] };
    assert.ok(jobs.data[0].warnings.some((w) => w.code === "W_PARAM_ADAPTED" && w.param === "partial_images"));
  });

  test("a failure after the stream started ends it with an error event in OpenAI's shape", async () => {
    const res = await post(gw.url, "/v1/images/generations", { model: "remote-sd15", prompt: "x", size: "64x64", stream: true, clip_skip: 20 }, bearer(gw.key));
    assert.equal(res.status, 200);
    const { events } = blocks(await res.text());
    assert.equal(events.at(-1)?.event, "error");
    const err = events.at(-1)?.data.error as { param: string; message: string };
    assert.equal(err.param, "clip_skip");
    assert.match(err.message, /provider "easel" answered 400/);
  });
});

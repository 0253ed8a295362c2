/**
 * The prompt fields on every dialect (extension fields under Playground's names), GET /v1/styles, and expand_prompt
 * through a real chat-completions exchange: a loopback server that stands in for a language model (OpenAI wire format,
 * a deterministic answer).
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { model } from "./fake-image-service.ts";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

const small = { prompt: "a lighthouse" };

describe("prompt fields on every dialect", async () => {
  const { app, images } = await makeApp({ keys: { "sk-test": 1000 } });

  test("OpenAI: prompt_filter styles the prompt and revised_prompt reports it; topics refuse in OpenAI's error shape", async () => {
    const res = await expectOk(app, { url: "/v1/images/generations", payload: { ...small, model: "sd15", size: "512x512", prompt_filter: "cinematic" }, headers: AUTH });
    const sent = images.calls.at(-1)!.req.prompt;
    assert.equal(sent, "cinematic film still of a lighthouse, anamorphic lens, shallow depth of field, film grain, color graded");
    assert.equal(res.json().data[0].revised_prompt, sent);
    const plain = await expectOk(app, { url: "/v1/images/generations", payload: { ...small, model: "sd15", size: "512x512" }, headers: AUTH });
    assert.equal(plain.json().data[0].revised_prompt, "a lighthouse");
    const { body } = await expectRejected(
      app,
      images,
      { url: "/v1/images/generations", payload: { prompt: "casino gambling chips", model: "sd15", prompt_rejection_topics: ["Gambling"] }, headers: AUTH },
      400,
    );
    const e = body.error as { message: string; param: string; code: string };
    assert.equal(e.param, "prompt_rejection_topics");
    assert.match(e.message, /"Gambling"/);
    const unknown = await expectRejected(app, images, { url: "/v1/images/generations", payload: { ...small, model: "sd15", prompt_filter: "sepia" }, headers: AUTH }, 400);
    assert.equal((unknown.body.error as { param: string }).param, "prompt_filter");
  });

  test("Monica SD and Monica playground: styles and safety refusals", async () => {
    const res = await expectOk(app, { url: "/v1/image/gen/sd", payload: { model: "sdxl", prompt: "a fox", prompt_filter: "old-timey" }, headers: AUTH });
    assert.match(images.calls.at(-1)!.req.prompt, /^old-timey vintage photograph of a fox, sepia tone/);
    assert.equal(res.headers["x-easel-style"], "old-timey");
    const { body } = await expectRejected(app, images, { url: "/v1/image/gen/playground", payload: { prompt: "a n4ked figure", verify_prompt_safety: true }, headers: AUTH }, 400);
    assert.equal((body.error as { param: string }).param, "verify_prompt_safety");
  });

  test("Segmind: style and topics, with x-api-key", async () => {
    const headers = { "x-api-key": "sk-test" };
    await expectOk(app, { url: "/v1/playground-v2.5", payload: { prompt: "a fox", prompt_filter: "portrait" }, headers });
    assert.match(images.calls.at(-1)!.req.prompt, /^portrait of a fox, head and shoulders/);
    await expectRejected(app, images, { url: "/v1/playground-v2.5", payload: { prompt: "a cigarette ad", prompt_rejection_topics: ["cigarettes"] }, headers }, 400);
  });

  test("safety_check on every dialect reaches the request; a model served upstream refuses it before admission", async () => {
    await expectOk(app, { url: "/v1/images/generations", payload: { ...small, model: "sd15", size: "512x512", safety_check: true }, headers: AUTH });
    assert.equal(images.calls.at(-1)!.req.safetyCheck, true);
    await expectOk(app, { url: "/v1/playground-v2.5", payload: { prompt: "a fox", safety_check: true }, headers: { "x-api-key": "sk-test" } });
    assert.equal(images.calls.at(-1)!.req.safetyCheck, true);
    const { app: up, images: upImages } = await makeApp({ keys: { "sk-test": 1000 }, models: [{ ...model("dall-e-3", "upstream"), backend: "openai-cloud" }] });
    const { body } = await expectRejected(up, upImages, { url: "/v1/images/generations", payload: { ...small, model: "dall-e-3", safety_check: true }, headers: AUTH }, 400);
    assert.match((body.error as { message: string }).message, /local models only; "dall-e-3" is served by openai-cloud/);
  });

  test("A1111: styles by name apply as the web UI applies them; an unknown name is skipped with a warning; /sdapi/v1/prompt-styles", async () => {
    const res = await expectOk(app, { url: "/sdapi/v1/txt2img", payload: { prompt: "a fox", negative_prompt: "text", styles: ["closeup", "nope", "haze"], width: 64, height: 64, steps: 2 }, headers: AUTH });
    const { req } = images.calls.at(-1)!;
    assert.equal(req.prompt, "close-up of a fox, tight framing, fine surface detail, shallow depth of field, soft atmospheric haze, diffused light, muted colors, dreamy depth");
    assert.match(req.negativePrompt ?? "", /^text, wide shot, distant, .*, harsh contrast, crisp clear air, /);
    assert.ok(req.warnings?.some((w) => w.code === "W_PARAM_IGNORED" && w.param === "styles" && /"nope"/.test(w.message)), JSON.stringify(req.warnings));
    assert.equal(res.statusCode, 200);
    const list = await app.inject({ method: "GET", url: "/sdapi/v1/prompt-styles", headers: AUTH });
    const styles = list.json() as { name: string; prompt: string; negative_prompt: string }[];
    assert.equal(styles.length, 36);
    assert.ok(styles.some((s) => s.name === "old-timey" && s.prompt.includes("{prompt}")));
    // The extension fields work here too, before admission.
    const { body } = await expectRejected(app, images, { url: "/sdapi/v1/txt2img", payload: { prompt: "a casino, GAMBLING", prompt_rejection_topics: ["gambling"], width: 64, height: 64 }, headers: AUTH }, 400);
    assert.match(JSON.stringify(body), /gambling/);
    await expectOk(app, { url: "/sdapi/v1/txt2img", payload: { prompt: "a fox", prompt_filter: "closeup", styles: ["haze"], safety_check: true, width: 64, height: 64, steps: 2 }, headers: AUTH });
    const last = images.calls.at(-1)!.req;
    assert.match(last.prompt, /^close-up of a fox, .*, soft atmospheric haze/);
    assert.equal(last.safetyCheck, true);
  });

  test("GET /v1/styles lists the 36 presets with their templates; it needs a key", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/styles", headers: AUTH });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as { object: string; data: { id: string; prompt: string; negative_prompt: string }[] };
    assert.equal(body.object, "list");
    assert.equal(body.data.length, 36);
    assert.ok(body.data.every((s) => s.prompt.includes("{prompt}")));
    assert.ok(body.data.some((s) => s.id === "black_and_white_3d"));
    assert.equal((await app.inject({ method: "GET", url: "/v1/styles" })).statusCode, 401);
  });
});

describe("expand_prompt through a configured provider", async () => {
  // Stands in for a language model: OpenAI's chat-completions wire format, a deterministic answer.
  let server: Server;
  const bodies: { model: string; messages: { role: string; content: string }[] }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(parts).toString("utf8"));
        bodies.push(body);
        const user = body.messages.at(-1).content as string;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", created: 1, model: body.model, choices: [{ index: 0, message: { role: "assistant", content: `${user}, at dawn, mist over the sea` }, finish_reason: "stop" }] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });
  after(async () => new Promise((r) => server.close(r)));

  test("the expanded and styled prompt reaches the model and comes back in x-easel-revised-prompt", async () => {
    const port = (server.address() as AddressInfo).port;
    const { app, images } = await makeApp(
      { keys: { "sk-test": 1000 } },
      { providers: { llm: { type: "openai", baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: "k" } }, promptExpansion: { provider: "llm", model: "chat-1" } },
    );
    const res = await expectOk(app, { url: "/api/models/external/v1", payload: { prompt: "a lighthouse", width: 64, height: 64, expand_prompt: true, prompt_filter: "haze" }, headers: AUTH });
    const sent = images.calls.at(-1)!.req.prompt;
    assert.equal(sent, "a lighthouse, at dawn, mist over the sea, soft atmospheric haze, diffused light, muted colors, dreamy depth");
    assert.equal(JSON.parse(String(res.headers["x-easel-revised-prompt"])), sent);
    assert.equal(bodies.at(-1)?.model, "chat-1");
    await app.close();
  });
});

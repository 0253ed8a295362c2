/** OpenAI Images dialect: fields at their bounds and one past, error shapes and statuses, streaming. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import sharp from "sharp";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

const URL_ = "/v1/images/generations";
const base = { prompt: "a red fox", size: "64x64", model: "sd15" };

function openAiError(body: Record<string, unknown>) {
  const e = body.error as { message: string; type: string; param: string | null; code: string | null };
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  assert.ok("param" in e && "code" in e, "error has param and code");
  return e;
}

describe("OpenAI images: accepted bounds", async () => {
  const { app, images } = await makeApp();

  test("url answer points at this server and the file serves the PNG at the requested size", async () => {
    const res = await expectOk(app, { url: URL_, payload: base, headers: AUTH });
    const body = res.json();
    assert.equal(typeof body.created, "number");
    assert.equal(body.data.length, 1);
    assert.equal(body.data[0].revised_prompt, "a red fox");
    const url = new URL(body.data[0].url);
    assert.match(url.pathname, /^\/v1\/files\/[A-Za-z0-9_-]{20,}$/);
    const file = await app.inject({ method: "GET", url: url.pathname });
    assert.equal(file.statusCode, 200);
    assert.equal(file.headers["content-type"], "image/png");
    const meta = await sharp(file.rawPayload).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 64, 64]);
    assert.equal(res.headers["x-easel-seed"], String(body.data[0].seed));
  });

  test("transparent background, a value OpenAI accepts, is no 400: it reaches the service (which answers opaque and warns)", async () => {
    const body = (await expectOk(app, { url: URL_, payload: { ...base, background: "transparent" }, headers: AUTH })).json();
    assert.equal(body.background, "opaque");
    assert.equal(images.calls.at(-1)!.req.output.background, "transparent");
  });

  test("the same path under /api/llm answers too", async () => {
    await expectOk(app, { url: "/api/llm/images/generations", payload: base, headers: AUTH });
  });

  test("b64_json with jpeg and output_compression at 0 and 100, webp", async () => {
    for (const [fmt, c] of [["jpeg", 0], ["jpeg", 100], ["webp", 50], ["png", undefined]] as const) {
      const payload = { ...base, response_format: "b64_json", output_format: fmt, output_compression: c };
      const body = (await expectOk(app, { url: URL_, payload, headers: AUTH })).json();
      assert.equal(body.data[0].url, undefined);
      const meta = await sharp(Buffer.from(body.data[0].b64_json, "base64")).metadata();
      assert.equal(meta.format, fmt);
      assert.equal(body.output_format, fmt);
      const last = images.calls.at(-1)!.req;
      assert.equal(last.output.quality, c);
      assert.equal(images.calls.at(-1)!.ctx.delivery, "bytes", "b64 answers are not stored");
    }
  });

  test("n at 1 and 10, size at 64 and 2048 per side, auto = model default", async () => {
    const ten = (await expectOk(app, { url: URL_, payload: { ...base, n: 10 }, headers: AUTH })).json();
    assert.equal(ten.data.length, 10);
    await expectOk(app, { url: URL_, payload: { ...base, size: "2048x64" }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.width, images.calls.at(-1)!.req.height], [2048, 64]);
    const auto = (await expectOk(app, { url: URL_, payload: { ...base, size: "auto" }, headers: AUTH })).json();
    assert.equal(auto.size, "512x512");
  });

  test("Easel extension fields and SDK fields map into the GenerationRequest", async () => {
    const payload = {
      ...base,
      negative_prompt: "blurry",
      seed: 1234,
      steps: 150,
      guidance_scale: 0,
      scheduler: "euler",
      user: "u-1",
      background: "opaque",
      quality: "high",
      style: "vivid",
      moderation: "low",
      partial_images: 3,
    };
    const res = await expectOk(app, { url: URL_, payload, headers: { ...AUTH, "idempotency-key": "idem-1" } });
    const { req, ctx } = images.calls.at(-1)!;
    assert.equal(req.negativePrompt, "blurry");
    assert.equal(req.seed, 1234);
    assert.equal(req.steps, 150);
    assert.equal(req.guidanceScale, 0);
    assert.equal(req.scheduler, "euler");
    await expectOk(app, { url: URL_, payload: { ...base, scheduler: "DPMPP_2M_K" }, headers: AUTH });
    assert.equal(images.calls.at(-1)!.req.scheduler, "dpmpp_2m_karras", "dialect names map to canonical ids");
    assert.equal(req.user, "u-1");
    assert.equal(req.partialImages, 0, "previews only when streaming");
    assert.equal(ctx.idempotencyKey, "idem-1");
    assert.equal(ctx.dialect, "openai");
    assert.equal(res.json().data[0].seed, 1234);
    const warnings = JSON.parse(String(res.headers["x-easel-warnings"])) as { param: string }[];
    assert.deepEqual(warnings.map((w) => w.param).sort(), ["moderation", "partial_images", "quality", "style"]);
  });

  test("GET /v1/models lists installed models in OpenAI's shape", async () => {
    const res = await expectOk(app, { method: "GET", url: "/v1/models", headers: AUTH });
    const body = res.json();
    assert.equal(body.object, "list");
    assert.ok(body.data.some((m: { id: string; object: string }) => m.id === "sdxl" && m.object === "model"));
  });
});

describe("OpenAI images: rejections", async () => {
  const { app, images } = await makeApp({ keys: { "sk-test": 100, "sk-poor": 0 } });
  const bad = async (payload: unknown, status = 400, headers: Record<string, string> = AUTH) =>
    openAiError((await expectRejected(app, images, { url: URL_, payload, headers }, status)).body);

  test("each field one past its bounds, or of the wrong type", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ n: 0 }, "n"],
      [{ n: 11 }, "n"],
      [{ n: 1.5 }, "n"],
      [{ n: "1" }, "n"],
      [{ size: "2056x64" }, "size"],
      [{ size: "56x64" }, "size"],
      [{ size: "100x100" }, "size"],
      [{ size: "big" }, "size"],
      [{ output_compression: -1 }, "output_compression"],
      [{ output_compression: 101 }, "output_compression"],
      [{ partial_images: 4 }, "partial_images"],
      [{ partial_images: -1 }, "partial_images"],
      [{ response_format: "file" }, "response_format"],
      [{ output_format: "gif" }, "output_format"],
      [{ quality: "ultra" }, "quality"],
      [{ background: "green" }, "background"],
      [{ moderation: "none" }, "moderation"],
      [{ style: "bold" }, "style"],
      [{ stream: "yes" }, "stream"],
      [{ prompt: "" }, "prompt"],
      [{ prompt: 5 }, "prompt"],
      [{ seed: -1 }, "seed"],
      [{ steps: 0 }, "steps"],
      [{ steps: 1001 }, "steps"],
      [{ clip_skip: 12 }, "clip_skip"],
      [{ max_sequence_length: 77 }, "max_sequence_length"],
      [{ guidance_scale: 50.5 }, "guidance_scale"],
      [{ user: 7 }, "user"],
      [{ scheduler: "bogus" }, "scheduler"],
    ];
    for (const [patch, param] of cases) {
      const e = await bad({ ...base, ...patch });
      assert.equal(e.type, "invalid_request_error");
      assert.equal(e.param, param, JSON.stringify(patch));
    }
  });

  test("missing prompt, unknown field, non-JSON body", async () => {
    assert.equal((await bad({ model: "sd15" })).code, "missing_required_parameter");
    const unknown = await bad({ ...base, colour: "red" });
    assert.deepEqual([unknown.code, unknown.param], ["unknown_parameter", "colour"]);
    const res = await expectRejected(
      app,
      images,
      { url: URL_, payload: "{not json", headers: { ...AUTH, "content-type": "application/json" } },
      400,
    );
    openAiError(res.body);
    openAiError((await expectRejected(app, images, { url: URL_, headers: AUTH }, 400)).body);
  });

  test("unknown model: 404 naming the model and how to install it", async () => {
    const e = await bad({ ...base, model: "dall-e-3" }, 404);
    assert.equal(e.code, "model_not_found");
    assert.match(e.message, /dall-e-3/);
    assert.match(e.message, /install/i);
  });

  test("keys: missing and wrong are 401 before the body is looked at", async () => {
    const missing = await bad({ nonsense: true }, 401, {});
    assert.equal(missing.code, null);
    const wrong = await bad(base, 401, { authorization: "Bearer sk-nope" });
    assert.equal(wrong.code, "invalid_api_key");
  });

  test("wrong method is 405, unknown path under /v1 is 404, both in OpenAI's shape", async () => {
    const r = await expectRejected(app, images, { method: "GET", url: URL_, headers: AUTH }, 405);
    openAiError(r.body);
    assert.equal(r.headers.allow, "POST");
    openAiError((await expectRejected(app, images, { url: "/v1/images/edits-nope", payload: base, headers: AUTH }, 404)).body);
  });

  test("an exhausted balance is OpenAI's 429 insufficient_quota, and nothing is charged", async () => {
    const res = await app.inject({ method: "POST", url: URL_, payload: base, headers: { authorization: "Bearer sk-poor" } });
    assert.equal(res.statusCode, 429);
    assert.equal(res.json().error.code, "insufficient_quota");
    assert.equal(images.charges.length, 0);
  });
});

describe("OpenAI images: streaming", async () => {
  const { app } = await makeApp();

  test("partial_image events then a completed event, shaped like the SDK's ImageGenStreamEvent", async () => {
    const payload = { ...base, stream: true, partial_images: 2, output_format: "webp" };
    const res = await app.inject({ method: "POST", url: URL_, payload, headers: AUTH });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
    const events = res.body
      .split("\n\n")
      .filter((b) => b.trim() !== "")
      .map((block) => {
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
        return { event, data };
      });
    assert.deepEqual(
      events.map((e) => e.event),
      ["image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"],
    );
    for (const [i, e] of events.slice(0, 2).entries()) {
      assert.equal(e.data.type, "image_generation.partial_image");
      assert.equal(e.data.partial_image_index, i);
      for (const k of ["b64_json", "background", "created_at", "output_format", "quality", "size"]) assert.ok(k in e.data, k);
    }
    const done = events[2].data;
    assert.equal(done.type, "image_generation.completed");
    assert.equal(done.output_format, "webp");
    assert.equal(done.size, "64x64");
    assert.deepEqual(Object.keys(done.usage).sort(), ["input_tokens", "input_tokens_details", "output_tokens", "total_tokens"]);
    const meta = await sharp(Buffer.from(done.b64_json, "base64")).metadata();
    assert.deepEqual([meta.format, meta.width], ["webp", 64]);
  });

  test("an error before the first event is a normal JSON error with its status", async () => {
    const res = await app.inject({ method: "POST", url: URL_, payload: { ...base, stream: true, model: "nope" }, headers: AUTH });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, "model_not_found");
  });
});

/** Playground external API (specs/001): bounds, model-dependent rules, img2img, the prompt fields. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import sharp from "sharp";
import { model } from "./fake-image-service.ts";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";

const url = "/api/models/external/v1";
const small = { prompt: "a lighthouse", width: 64, height: 64 };

function playgroundError(body: Record<string, unknown>) {
  assert.equal(typeof body.error, "string");
  assert.equal(typeof body.code, "string");
  return body as { error: string; code: string; param?: string };
}

describe("Playground external API", async () => {
  const v3 = model("playground-v3", "upstream");
  const { app, images } = await makeApp({ models: [model("playground-v2.5", "playground"), v3] });

  test("answers base64 PNGs with the seed; defaults follow the page", async () => {
    const res = await expectOk(app, { url, payload: small, headers: AUTH });
    const body = res.json();
    assert.equal(body.images.length, 1);
    const meta = await sharp(Buffer.from(body.images[0], "base64")).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 64, 64]);
    const { req } = images.calls.at(-1)!;
    assert.equal(body.seed, Number(res.headers["x-easel-seed"]));
    assert.deepEqual([req.model, req.steps, req.guidanceScale, req.scheduler], ["playground-v2.5", 50, 3, "edm_dpmpp_2m"]);
    assert.equal(images.calls.at(-1)!.ctx.delivery, "bytes");
    await expectOk(app, { url, payload: { prompt: "x" }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.width, images.calls.at(-1)!.req.height], [1024, 1024]);
  });

  test("bounds: steps 1 and 150, seed 1 and 65535, every scheduler, v3 defaults to guidance 7", async () => {
    await expectOk(app, { url, payload: { ...small, num_inference_steps: 150, seed: 65535, guidance_scale: 30 }, headers: AUTH });
    await expectOk(app, { url, payload: { ...small, num_inference_steps: 1, seed: 1, guidance_scale: 0 }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.steps, images.calls.at(-1)!.req.seed], [1, 1]);
    const { SCHEDULERS } = await import("../../src/dialects/playground/schema.ts");
    assert.equal(SCHEDULERS.length, 18);
    for (const s of SCHEDULERS) await expectOk(app, { url, payload: { ...small, scheduler: s }, headers: AUTH });
    await expectOk(app, { url, payload: { prompt: "x", filter_model: "Playground_v3", width: 96, height: 64 }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.model, images.calls.at(-1)!.req.guidanceScale], ["playground-v3", 7]);
  });

  test("one past each bound and wrong types: 400 INVALID_PARAMETER naming the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ num_inference_steps: 0 }, "num_inference_steps"],
      [{ num_inference_steps: 151 }, "num_inference_steps"],
      [{ seed: 0 }, "seed"],
      [{ seed: 65536 }, "seed"],
      [{ seed: "5" }, "seed"],
      [{ width: 60 }, "width"],
      [{ width: 2056 }, "width"],
      [{ height: 100 }, "height"],
      [{ width: "64" }, "width"],
      [{ scheduler: "K_EULER" }, "scheduler"],
      [{ filter_model: "Playground_v2" }, "filter_model"],
      [{ guidance_scale: 31 }, "guidance_scale"],
      [{ strength: 0.5 }, "strength"],
      [{ init_image: "%%%not base64%%%" }, "init_image"],
      [{ init_image: Buffer.from("not an image").toString("base64") }, "init_image"],
      [{ expand_prompt: "yes" }, "expand_prompt"],
      [{ prompt_rejection_topics: "gambling" }, "prompt_rejection_topics"],
      [{ prompt_filter: "sepia" }, "prompt_filter"],
      [{ prompt: "" }, "prompt"],
    ];
    for (const [patch, param] of cases) {
      const { body } = await expectRejected(app, images, { url, payload: { ...small, ...patch }, headers: AUTH }, 400);
      const e = playgroundError(body);
      assert.deepEqual([e.code, e.param], ["INVALID_PARAMETER", param], JSON.stringify(patch));
    }
    const { body } = await expectRejected(app, images, { url, payload: { width: 64 }, headers: AUTH }, 400);
    assert.equal(playgroundError(body).param, "prompt");
  });

  test("Playground_v3 needs sides divisible by 32", async () => {
    const { body } = await expectRejected(app, images, { url, payload: { prompt: "x", filter_model: "Playground_v3", width: 72, height: 64 }, headers: AUTH }, 400);
    assert.match(playgroundError(body).error, /divisible by 32/);
  });

  test("Photorealism is refused until configured, naming it", async () => {
    const { body } = await expectRejected(app, images, { url, payload: { ...small, filter_model: "Photorealism" }, headers: AUTH }, 404);
    const e = playgroundError(body);
    assert.equal(e.code, "MODEL_NOT_AVAILABLE");
    assert.match(e.error, /Photorealism/);
  });

  test("img2img: init_image (raw or data URL) with strength 0 and 1 reaches the request", async () => {
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#123456" } }).png().toBuffer();
    await expectOk(app, { url, payload: { ...small, init_image: png.toString("base64"), strength: "0" }, headers: AUTH });
    let r = images.calls.at(-1)!.req;
    assert.deepEqual([r.initImage?.length, r.strength], [png.length, 0]);
    await expectOk(app, { url, payload: { ...small, init_image: `data:image/png;base64,${png.toString("base64")}`, strength: 1 }, headers: AUTH });
    r = images.calls.at(-1)!.req;
    assert.equal(r.strength, 1);
    for (const s of [-0.1, 1.1, "lots"]) {
      await expectRejected(app, images, { url, payload: { ...small, init_image: png.toString("base64"), strength: s }, headers: AUTH }, 400);
    }
  });

  test("prompt_filter wraps the prompt in its preset; the prompt used comes back in x-easel-revised-prompt", async () => {
    const off = { expand_prompt: false, verify_prompt_safety: false, prompt_rejection_topics: [] };
    const plain = await expectOk(app, { url, payload: { ...small, ...off }, headers: AUTH });
    assert.equal(images.calls.at(-1)!.req.prompt, "a lighthouse");
    assert.equal(plain.headers["x-easel-revised-prompt"], undefined);
    const res = await expectOk(app, { url, payload: { ...small, negative_prompt: "people", prompt_filter: "watercolor" }, headers: AUTH });
    const { req } = images.calls.at(-1)!;
    assert.equal(req.prompt, "watercolor painting of a lighthouse, soft washes, bleeding pigments, paper texture, loose brushwork");
    assert.match(req.negativePrompt ?? "", /^photo, 3d render, .*, people$/);
    assert.equal(JSON.parse(String(res.headers["x-easel-revised-prompt"])), req.prompt);
    assert.equal(res.headers["x-easel-style"], "watercolor");
  });

  test("prompt_rejection_topics and verify_prompt_safety refuse with PROMPT_UNSAFE naming the topic, before anything runs", async () => {
    const topics = { prompt_rejection_topics: ["gambling", "brand logos"] };
    for (const prompt of ["a G4MBLING den at night", "a wall of brand-logos", "they gamble on horses"]) {
      const { body } = await expectRejected(app, images, { url, payload: { ...small, prompt, ...topics }, headers: AUTH }, 400);
      const e = playgroundError(body);
      assert.deepEqual([e.code, e.param], ["PROMPT_UNSAFE", "prompt_rejection_topics"]);
      assert.match(e.error, /"gambling"|"brand logos"/);
    }
    await expectOk(app, { url, payload: { ...small, prompt: "a brand new lighthouse", ...topics }, headers: AUTH });
    const { body } = await expectRejected(app, images, { url, payload: { ...small, prompt: "a nude statue", verify_prompt_safety: true }, headers: AUTH }, 400);
    assert.deepEqual([playgroundError(body).code, playgroundError(body).param], ["PROMPT_UNSAFE", "verify_prompt_safety"]);
    await expectOk(app, { url, payload: { ...small, verify_prompt_safety: true }, headers: AUTH });
  });

  test("expand_prompt without a configured provider is NOT_SUPPORTED saying how to configure one", async () => {
    const { body } = await expectRejected(app, images, { url, payload: { ...small, expand_prompt: true }, headers: AUTH }, 400);
    const e = playgroundError(body);
    assert.deepEqual([e.code, e.param], ["NOT_SUPPORTED", "expand_prompt"]);
    assert.match(e.error, /promptExpansion: \{provider, model\}/);
  });

  test("keys and method", async () => {
    assert.equal(playgroundError((await expectRejected(app, images, { url, payload: small }, 401)).body).code, "UNAUTHORIZED");
    const m = await expectRejected(app, images, { method: "GET", url, headers: AUTH }, 405);
    assert.equal(playgroundError(m.body).code, "METHOD_NOT_ALLOWED");
    const nf = await expectRejected(app, images, { url: "/api/models/external/v2", payload: small, headers: AUTH }, 404);
    assert.equal(playgroundError(nf.body).code, "NOT_FOUND");
  });
});

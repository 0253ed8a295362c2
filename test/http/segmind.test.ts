/** Segmind Playground v2.5 (specs/002): bounds, raw JPEG vs base64, statuses 401/404/405/406, x-remaining-credits. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import sharp from "sharp";
import { expectOk, expectRejected, makeApp } from "./helpers.ts";
import { SEGMIND_EXAMPLE as EXAMPLE } from "./spec-examples.ts";

const url = "/v1/playground-v2.5";
const KEY = { "x-api-key": "sk-test" };

function segmindError(body: Record<string, unknown>) {
  assert.equal(typeof body.error, "string");
  return body as { error: string; code: string; param?: string };
}

describe("Segmind playground-v2.5", async () => {
  const { app, images } = await makeApp({ keys: { "sk-test": 1000, "sk-poor": 0 } });

  test("the page's example answers a decodable image/jpeg body with x-remaining-credits", async () => {
    const res = await expectOk(app, { url, payload: EXAMPLE, headers: KEY });
    assert.equal(res.headers["content-type"], "image/jpeg");
    const meta = await sharp(res.rawPayload).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 1024, 1024]);
    assert.equal(res.headers["x-remaining-credits"], "999");
    assert.equal(res.headers["x-easel-seed"], "36446545871");
    const { req, ctx } = images.calls.at(-1)!;
    assert.deepEqual([req.model, req.steps, req.guidanceScale, req.seed, req.n], ["playground-v2.5", 25, 3, 36446545871, 1]);
    assert.equal(ctx.dialect, "segmind");
  });

  test("base64 defaults to true: JSON with base64 JPEGs and the seed; seed -1 is random", async () => {
    const res = await expectOk(app, { url, payload: { prompt: "x", samples: 4, seed: -1 }, headers: KEY });
    const body = res.json();
    assert.equal(body.images.length, 4);
    assert.equal(body.image, body.images[0]);
    assert.equal(typeof body.seed, "number");
    assert.equal((await sharp(Buffer.from(body.image, "base64")).metadata()).format, "jpeg");
    assert.equal(images.calls.at(-1)!.req.seed, undefined);
    assert.ok(res.headers["x-remaining-credits"]);
  });

  test("bounds accepted: samples 1/4, steps 20/100, guidance 1/25, seed -1/999999999999999, base64 0/1", async () => {
    const ok = [
      { num_inference_steps: 20, guidance_scale: 1, seed: 999999999999999, base64: 1 },
      { num_inference_steps: 100, guidance_scale: 25, seed: 0, base64: true },
      { samples: 1, base64: 0 },
    ];
    for (const p of ok) await expectOk(app, { url, payload: { prompt: "x", ...p }, headers: KEY });
    assert.equal(images.calls.at(-2)!.req.seed, 0);
  });

  test("one past each bound and wrong types: 400 with x-remaining-credits", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ samples: 0 }, "samples"],
      [{ samples: 5 }, "samples"],
      [{ num_inference_steps: 19 }, "num_inference_steps"],
      [{ num_inference_steps: 101 }, "num_inference_steps"],
      [{ guidance_scale: 0.9 }, "guidance_scale"],
      [{ guidance_scale: 25.1 }, "guidance_scale"],
      [{ seed: -2 }, "seed"],
      [{ seed: 1000000000000000 }, "seed"],
      [{ seed: "42" }, "seed"],
      [{ base64: "yes" }, "base64"],
      [{ prompt: "" }, "prompt"],
      [{ samples: 2, base64: false }, "samples"],
    ];
    for (const [patch, param] of cases) {
      const { body, headers } = await expectRejected(app, images, { url, payload: { prompt: "x", ...patch }, headers: KEY }, 400);
      assert.equal(segmindError(body).param, param, JSON.stringify(patch));
      assert.ok(headers["x-remaining-credits"] !== undefined);
    }
    assert.equal(segmindError((await expectRejected(app, images, { url, payload: { samples: 1 }, headers: KEY }, 400)).body).param, "prompt");
  });

  test("401 without or with a wrong x-api-key (a Bearer header is not Segmind's auth)", async () => {
    for (const headers of [{}, { "x-api-key": "nope" }, { authorization: "Bearer sk-test" }] as Record<string, string>[]) {
      const r = await expectRejected(app, images, { url, payload: EXAMPLE, headers }, 401);
      segmindError(r.body);
      assert.equal(r.headers["x-remaining-credits"], "0");
    }
  });

  test("404 for an unknown URL, 405 for another method, both with the balance", async () => {
    const nf = await expectRejected(app, images, { url: "/v1/sdxl1.0-txt2img", payload: EXAMPLE, headers: KEY }, 404);
    segmindError(nf.body);
    assert.ok(Number(nf.headers["x-remaining-credits"]) > 0);
    for (const method of ["GET", "PUT", "DELETE"] as const) {
      const r = await expectRejected(app, images, { method, url, headers: KEY }, 405);
      segmindError(r.body);
      assert.ok(Number(r.headers["x-remaining-credits"]) > 0);
    }
  });

  test("406 when the balance is too low, nothing charged", async () => {
    const res = await app.inject({ method: "POST", url, payload: EXAMPLE, headers: { "x-api-key": "sk-poor" } });
    assert.equal(res.statusCode, 406);
    segmindError(res.json());
    assert.equal(res.headers["x-remaining-credits"], "0");
    assert.equal(images.balance("sk-poor"), 0);
  });

  test("500 for a server failure", async () => {
    const { EaselError } = await import("../../src/core/errors.ts");
    const { app: failing } = await makeApp({ failWith: new EaselError("E_ENGINE_FAILED", "boom") });
    const res = await failing.inject({ method: "POST", url, payload: EXAMPLE, headers: KEY });
    assert.equal(res.statusCode, 500);
    segmindError(res.json());
  });
});

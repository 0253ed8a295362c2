/** Monica Playground (specs/000) and Monica SD (specs/003): bounds, string numbers, per-model rules, errors. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";
import { MONICA_PLAYGROUND_EXAMPLE as PLAYGROUND_EXAMPLE, MONICA_SD_EXAMPLE as SD_EXAMPLE } from "./spec-examples.ts";


function monicaError(body: Record<string, unknown>) {
  const e = body.error as { message: string; type: string; param: string | null; code: string | null };
  assert.equal(typeof e.message, "string");
  assert.equal(typeof e.type, "string");
  return e;
}

describe("Monica playground", async () => {
  const { app, images } = await makeApp({ keys: { "sk-test": 1000, "sk-poor": 0 } });
  const url = "/v1/image/gen/playground";

  test("the page's example body (string seed and cfg_scale) generates with the page's defaults", async () => {
    const res = await expectOk(app, { url, payload: PLAYGROUND_EXAMPLE, headers: AUTH });
    const body = res.json();
    assert.equal(body.data.length, 1);
    assert.match(body.data[0].url, /\/v1\/files\//);
    const { req, ctx } = images.calls.at(-1)!;
    assert.deepEqual([req.model, req.width, req.height, req.steps, req.guidanceScale], ["playground-v2.5", 1024, 1024, 30, 7]);
    assert.equal(req.seed, undefined, "seed 0 means random");
    assert.equal(ctx.dialect, "monica-playground");
    assert.ok(Number(res.headers["x-easel-seed"]) >= 0);
  });

  test("bounds: count 1-4, step 1-50, seed up to 2147483647, sizes, string spellings", async () => {
    await expectOk(app, { url, payload: { prompt: "x", count: 4, step: 1, size: "768x1344" }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.n, images.calls.at(-1)!.req.width], [4, 768]);
    await expectOk(app, { url, payload: { prompt: "x", step: "50", seed: 2147483647, count: "2", safety_check: "false" }, headers: AUTH });
    const req = images.calls.at(-1)!.req;
    assert.deepEqual([req.steps, req.seed, req.n], [50, 2147483647, 2]);
    await expectOk(app, { url, payload: { prompt: "p".repeat(4000), negative_prompt: "n".repeat(4000), size: "1344x768" }, headers: AUTH });
  });

  test("one past each bound, wrong types, missing prompt: 400 in Monica's shape", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ count: 0 }, "count"],
      [{ count: 5 }, "count"],
      [{ count: "five" }, "count"],
      [{ step: 0 }, "step"],
      [{ step: 51 }, "step"],
      [{ step: "30.5" }, "step"],
      [{ seed: 2147483648 }, "seed"],
      [{ seed: -1 }, "seed"],
      [{ size: "512x512" }, "size"],
      [{ model: "playground-v3" }, "model"],
      [{ prompt: "" }, "prompt"],
      [{ prompt: "p".repeat(4001) }, "prompt"],
      [{ negative_prompt: "n".repeat(4001) }, "negative_prompt"],
      [{ safety_check: "maybe" }, "safety_check"],
      [{ cfg_scale: "high" }, "cfg_scale"],
    ];
    for (const [patch, param] of cases) {
      const { body } = await expectRejected(app, images, { url, payload: { ...PLAYGROUND_EXAMPLE, ...patch }, headers: AUTH }, 400);
      assert.equal(monicaError(body).param, param, JSON.stringify(patch));
    }
    const { body } = await expectRejected(app, images, { url, payload: { count: 1 }, headers: AUTH }, 400);
    assert.equal(monicaError(body).code, "missing_required_parameter");
  });

  test("safety_check: true (or \"true\") asks for the model's image safety checker; false or missing does not", async () => {
    for (const v of [true, "true"]) {
      await expectOk(app, { url, payload: { ...PLAYGROUND_EXAMPLE, safety_check: v }, headers: AUTH });
      assert.equal(images.calls.at(-1)!.req.safetyCheck, true);
    }
    await expectOk(app, { url, payload: PLAYGROUND_EXAMPLE, headers: AUTH });
    assert.equal(images.calls.at(-1)!.req.safetyCheck, undefined);
  });

  test("keys, method, balance", async () => {
    await expectRejected(app, images, { url, payload: PLAYGROUND_EXAMPLE }, 401);
    await expectRejected(app, images, { url, payload: PLAYGROUND_EXAMPLE, headers: { authorization: "Bearer bad" } }, 401);
    const m = await expectRejected(app, images, { method: "GET", url, headers: AUTH }, 405);
    monicaError(m.body);
    const poor = await app.inject({ method: "POST", url, payload: PLAYGROUND_EXAMPLE, headers: { authorization: "Bearer sk-poor" } });
    assert.equal(poor.statusCode, 429);
    monicaError(poor.json());
  });

  test("model not installed: 404 naming it", async () => {
    const { app: bare, images: none } = await makeApp({ models: [] });
    const { body } = await expectRejected(bare, none, { url, payload: PLAYGROUND_EXAMPLE, headers: AUTH }, 404);
    assert.match(monicaError(body).message, /playground-v2-5.*not installed/);
  });
});

describe("Monica SD", async () => {
  const { app, images } = await makeApp({ keys: { "sk-test": 1000 } });
  const url = "/v1/image/gen/sd";

  test("the page's example body: sd3_5, sdxl-only fields at their defaults accepted without warnings", async () => {
    const res = await expectOk(app, { url, payload: SD_EXAMPLE, headers: AUTH });
    assert.equal(res.json().data.length, 1);
    const { req } = images.calls.at(-1)!;
    assert.deepEqual([req.model, req.seed, req.steps, req.guidanceScale, req.n], ["sd3.5-large", 42, 28, 3.5, 1]);
    assert.deepEqual(req.output, { format: "webp", quality: 90 });
    assert.equal(req.negativePrompt, undefined);
    assert.equal(res.headers["x-easel-warnings"], undefined);
  });

  test("per-model defaults: sd3 28 steps / 3.5, sd3_5 40 / 4.5, sdxl 50 / 7.5 / K_EULER", async () => {
    await expectOk(app, { url, payload: { model: "sd3", prompt: "x" }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.steps, images.calls.at(-1)!.req.guidanceScale], [28, 3.5]);
    await expectOk(app, { url, payload: { model: "sd3_5", prompt: "x" }, headers: AUTH });
    assert.deepEqual([images.calls.at(-1)!.req.steps, images.calls.at(-1)!.req.guidanceScale], [40, 4.5]);
    await expectOk(app, { url, payload: { model: "sdxl", prompt: "x" }, headers: AUTH });
    const r = images.calls.at(-1)!.req;
    assert.deepEqual([r.steps, r.guidanceScale, r.scheduler, r.n, r.output.format], [50, 7.5, "euler", 1, "png"]);
  });

  test("per-model bounds accepted: sd3 steps 1/28, sd3_5 50, cfg 0/20, sdxl cfg 1/50, 500 steps, 4 outputs", async () => {
    const ok = [
      { model: "sd3", steps: 1, cfg_scale: 0 },
      { model: "sd3", steps: 28, cfg_scale: 20 },
      { model: "sd3_5", steps: 50, output_quality: 0 },
      { model: "sd3_5", output_quality: 100, seed: 4294967295 },
      { model: "sdxl", cfg_scale: 1, num_inference_steps: 1, num_outputs: 4, scheduler: "K_DPMPP_2M" },
      { model: "sdxl", cfg_scale: "50", num_inference_steps: 500, negative_prompt: "blur" },
    ];
    for (const p of ok) await expectOk(app, { url, payload: { prompt: "x", ...p }, headers: AUTH });
    const last = images.calls.at(-1)!.req;
    assert.deepEqual([last.steps, last.guidanceScale, last.negativePrompt], [500, 50, "blur"]);
    assert.equal(images.calls.at(-2)!.req.n, 4);
  });

  test("one past the per-model bounds, and wrong fields", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ model: "sd3", steps: 29 }, "steps"],
      [{ model: "sd3", steps: 0 }, "steps"],
      [{ model: "sd3_5", steps: 51 }, "steps"],
      [{ model: "sd3", cfg_scale: 20.5 }, "cfg_scale"],
      [{ model: "sd3_5", cfg_scale: -0.5 }, "cfg_scale"],
      [{ model: "sdxl", cfg_scale: 0.5 }, "cfg_scale"],
      [{ model: "sdxl", cfg_scale: 50.5 }, "cfg_scale"],
      [{ model: "sdxl", num_outputs: 5 }, "num_outputs"],
      [{ model: "sdxl", num_outputs: 0 }, "num_outputs"],
      [{ model: "sdxl", num_inference_steps: 501 }, "num_inference_steps"],
      [{ model: "sdxl", scheduler: "EULER_A" }, "scheduler"],
      [{ model: "sd3", output_quality: 101 }, "output_quality"],
      [{ model: "sd3", output_quality: -1 }, "output_quality"],
      [{ model: "sd3", seed: 4294967296 }, "seed"],
      [{ model: "sd3", size: "2048x2048" }, "size"],
      [{ model: "sd4" }, "model"],
      [{ model: "sdxl", prompt: "" }, "prompt"],
    ];
    for (const [patch, param] of cases) {
      const { body } = await expectRejected(app, images, { url, payload: { prompt: "x", ...patch }, headers: AUTH }, 400);
      assert.equal(monicaError(body).param, param, JSON.stringify(patch));
    }
    const { body } = await expectRejected(app, images, { url, payload: { prompt: "x" }, headers: AUTH }, 400);
    assert.equal(monicaError(body).code, "missing_required_parameter");
  });

  test("sdxl-only fields on sd3 are ignored with warnings; sd3-only fields on sdxl too", async () => {
    const res = await expectOk(app, {
      url,
      payload: { model: "sd3", prompt: "x", negative_prompt: "blur", num_outputs: 3, scheduler: "K_HEUN", num_inference_steps: 80 },
      headers: AUTH,
    });
    const r = images.calls.at(-1)!.req;
    assert.deepEqual([r.n, r.negativePrompt, r.scheduler, r.steps], [1, undefined, undefined, 28]);
    const params = (JSON.parse(String(res.headers["x-easel-warnings"])) as { param: string }[]).map((w) => w.param);
    assert.deepEqual(params.sort(), ["negative_prompt", "num_inference_steps", "num_outputs", "scheduler"]);
    const x = await expectOk(app, { url, payload: { model: "sdxl", prompt: "x", steps: 10, output_quality: 50 }, headers: AUTH });
    const xp = (JSON.parse(String(x.headers["x-easel-warnings"])) as { param: string }[]).map((w) => w.param);
    assert.deepEqual(xp.sort(), ["output_quality", "steps"]);
    assert.equal(images.calls.at(-1)!.req.steps, 50);
  });

  test("model not installed names it", async () => {
    const { app: bare, images: none } = await makeApp({ models: [] });
    const { body } = await expectRejected(bare, none, { url, payload: SD_EXAMPLE, headers: AUTH }, 404);
    assert.match(monicaError(body).message, /sd3_5/);
  });
});

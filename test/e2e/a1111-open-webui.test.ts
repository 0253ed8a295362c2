/**
 * Open WebUI's AUTOMATIC1111 image engine against the real server, request for request as its source sends them
 * (open-webui/open-webui, backend/open_webui/routers/images.py at 02530d5): `verify_url` (GET options,
 * raise_for_status), `get_models` (GET sd-models → {id: title, name: model_name}), `set_image_model` (GET options;
 * when the model differs, POST the whole options object back with sd_model_checkpoint changed), then
 * `image_generations` (GET options for the model, POST txt2img {prompt, batch_size, width, height, steps,
 * negative_prompt}, then base64-decode each of `images` and keep `info`). The key travels as Open WebUI's
 * AUTOMATIC1111_API_AUTH "user:password" → `authorization: Basic ...`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type A1111Server, basicAuth, readPng, startA1111Server } from "./a1111-harness.ts";

describe("Open WebUI (automatic1111 engine) against Easel", () => {
  let srv: A1111Server;
  let auth = "";
  before(async () => {
    srv = await startA1111Server({ withKey: true });
    // Open WebUI's get_automatic1111_api_auth: base64 of AUTOMATIC1111_API_AUTH.
    auth = basicAuth(`openwebui:${srv.key}`);
  });
  after(() => srv?.close());

  const get = (path: string, authorization = auth) => fetch(`${srv.base}${path}`, { headers: { authorization } });
  const post = (path: string, json: unknown, authorization = auth) =>
    fetch(`${srv.base}${path}`, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: JSON.stringify(json) });

  test("verify_url, get_models, set_image_model, image_generations: what Open WebUI reads", async () => {
    // verify_url
    const verify = await get("/sdapi/v1/options");
    assert.equal(verify.status, 200);

    // get_models
    const models = (await (await get("/sdapi/v1/sd-models")).json()) as { title: string; model_name: string }[];
    const listed = models.map((m) => ({ id: m.title, name: m.model_name }));
    assert.ok(listed.some((m) => m.id === "sd15") && listed.some((m) => m.id === "sd15-b"), JSON.stringify(listed));

    // set_image_model("sd15-b")
    const options = (await (await get("/sdapi/v1/options")).json()) as Record<string, unknown>;
    assert.equal(options.sd_model_checkpoint, "sd15", "the configured default model is current");
    assert.notEqual(options.sd_model_checkpoint, "sd15-b");
    options.sd_model_checkpoint = "sd15-b";
    const set = await post("/sdapi/v1/options", options);
    assert.equal(set.status, 200, await set.clone().text());
    assert.equal(await set.text(), "null");

    // image_generations: get_image_model, then txt2img with n = 2, size "64x64", steps 4 and a negative prompt.
    const model = ((await (await get("/sdapi/v1/options")).json()) as Record<string, unknown>).sd_model_checkpoint;
    assert.equal(model, "sd15-b", "the switch is kept for the key");
    const data = { prompt: "a red circle on a blue background", batch_size: 2, width: 64, height: 64, steps: 4, negative_prompt: "blurry" };
    const r = await post("/sdapi/v1/txt2img", data);
    const res = (await r.json()) as { images: string[]; info: string; parameters: Record<string, unknown> };
    assert.equal(r.status, 200, JSON.stringify(res));
    assert.equal(res.images.length, 2);
    const info = JSON.parse(res.info) as Record<string, unknown>;
    assert.equal(info.sd_model_name, "sd15-b");
    assert.equal(info.prompt, data.prompt);
    assert.equal(info.negative_prompt, "blurry");
    assert.deepEqual([info.width, info.height, info.steps, info.batch_size], [64, 64, 4, 2]);
    const seeds = info.all_seeds as number[];
    assert.equal(seeds.length, 2);
    assert.equal(info.seed, seeds[0]);
    for (const [i, image] of res.images.entries()) {
      // get_image_data: no "," in the string, so b64decode and image/png.
      assert.ok(!image.includes(","));
      const png = await readPng(image);
      assert.deepEqual([png.width, png.height], [64, 64]);
      assert.equal(png.flat, false);
      // The PNG's parameters chunk is the infotext `info` reports for that image.
      assert.equal(png.parameters?.split("\n")[0], data.prompt);
      assert.match(png.parameters ?? "", new RegExp(`Seed: ${seeds[i]}, Size: 64x64, Model: sd15-b`));
      assert.match((info.infotexts as string[])[i], new RegExp(`^${data.prompt}\\nNegative prompt: blurry\\nSteps: 4, .*Seed: ${seeds[i]}, Size: 64x64, Model: sd15-b$`));
    }
    assert.equal(res.parameters.prompt, data.prompt);
  });

  test("Open WebUI with no api_auth sends an empty authorization header: A1111's 401, Basic challenge", async () => {
    const res = await get("/sdapi/v1/options", "");
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), "Basic");
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ["body", "detail", "error", "errors"]);
    assert.equal(body.error, "HTTPException");
    assert.match(String(body.errors), /^401: /);
    const wrong = await get("/sdapi/v1/sd-models", basicAuth("openwebui:not-a-key"));
    assert.equal(wrong.status, 401);
  });

  test("a model switch to a model that is not installed is refused and changes nothing", async () => {
    const res = await post("/sdapi/v1/options", { sd_model_checkpoint: "sdxl_base.safetensors [31e35c80fc]" });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: string; detail: string };
    assert.equal(body.error, "HTTPException");
    assert.match(body.detail, /sdxl_base\.safetensors \[31e35c80fc\].*not installed/);
    const options = (await (await get("/sdapi/v1/options")).json()) as Record<string, unknown>;
    assert.equal(options.sd_model_checkpoint, "sd15-b");
  });
});

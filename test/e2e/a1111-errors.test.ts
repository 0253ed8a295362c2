/**
 * The A1111 dialect's refusals and its less travelled paths against the real server (micro sd15): bad input in each
 * endpoint gets A1111's own error shape and status (FastAPI's 422 `{detail: [...]}` for bodies,
 * `{error, detail, body, errors}` for the HTTPExceptions A1111 raises) with nothing generated or charged; then
 * img2img, legacy sampler names, substitution warnings, samples_format and Bearer keys.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { type A1111Server, basicAuth, readPng, startA1111Server } from "./a1111-harness.ts";

function countFiles(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
  } catch {
    return 0;
  }
}

describe("A1111 dialect: errors in A1111's shapes, nothing charged; img2img and names", () => {
  let srv: A1111Server;
  before(async () => {
    srv = await startA1111Server({ withKey: true, credits: 100 });
  });
  after(() => srv?.close());

  const post = (path: string, body: unknown, authorization = basicAuth(`u:${srv.key}`)) =>
    fetch(`${srv.base}${path}`, {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const small = { prompt: "a blue square", width: 64, height: 64, steps: 3 };

  test("bad input in every endpoint: A1111's error shape and status, no job, no image, no credits", async () => {
    const balance = await srv.balance();
    const images = join(srv.dataDir, "images");
    const filesBefore = countFiles(images);
    const validation: [string, unknown, (string | number)[]][] = [
      ["/sdapi/v1/txt2img", { ...small, steps: "many" }, ["body", "steps"]],
      ["/sdapi/v1/txt2img", { ...small, batch_size: 0 }, ["body", "batch_size"]],
      ["/sdapi/v1/txt2img", { ...small, cfg_scale: -1 }, ["body", "cfg_scale"]],
      ["/sdapi/v1/txt2img", { ...small, width: 100 }, ["body", "width"]],
      ["/sdapi/v1/txt2img", { ...small, batch_size: 8, n_iter: 8 }, ["body", "batch_size"]],
      ["/sdapi/v1/txt2img", { ...small, cfg_scale: 99 }, ["body", "cfg_scale"]],
      ["/sdapi/v1/txt2img", { ...small, scheduler: "sideways" }, ["body", "scheduler"]],
      ["/sdapi/v1/txt2img", { ...small, override_settings: { CLIP_stop_at_last_layers: 40 } }, ["body", "override_settings", "CLIP_stop_at_last_layers"]],
      ["/sdapi/v1/txt2img", "{not json", ["body"]],
      ["/sdapi/v1/img2img", { ...small }, ["body", "init_images"]],
      ["/sdapi/v1/img2img", { ...small, init_images: ["this is not an image"] }, ["body", "init_images"]],
      ["/sdapi/v1/img2img", { ...small, init_images: [Buffer.from("GIF89a....").toString("base64")] }, ["body", "init_images"]],
      ["/sdapi/v1/options", { CLIP_stop_at_last_layers: 0 }, ["body", "CLIP_stop_at_last_layers"]],
      ["/sdapi/v1/options", { samples_format: "gif" }, ["body", "samples_format"]],
    ];
    for (const [path, body, loc] of validation) {
      const res = await post(path, body);
      const json = (await res.json()) as { detail: { loc: (string | number)[]; msg: string; type: string }[] };
      assert.equal(res.status, 422, `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(json).slice(0, 300)}`);
      assert.ok(Array.isArray(json.detail) && json.detail.length === 1, JSON.stringify(json));
      assert.deepEqual(json.detail[0].loc, loc, JSON.stringify(json));
      assert.ok(json.detail[0].msg.length > 0);
      assert.equal(res.headers.get("x-easel-error-code"), "E_INPUT_INVALID");
    }
    const http: [string, unknown, number, RegExp][] = [
      ["/sdapi/v1/txt2img", { ...small, sampler_name: "Warp Drive" }, 404, /^Sampler not found: "Warp Drive"/],
      ["/sdapi/v1/txt2img", { ...small, script_name: "x/y/z plot" }, 422, /^Script 'x\/y\/z plot' not found$/],
      ["/sdapi/v1/txt2img", { ...small, override_settings: { sd_model_checkpoint: "nope.safetensors" } }, 404, /"nope\.safetensors" is not installed/],
      ["/sdapi/v1/options", { sd_model_checkpoint: "nope" }, 404, /"nope" is not installed/],
    ];
    const png = (await sharp({ create: { width: 64, height: 64, channels: 3, background: "#3060c0" } }).png().toBuffer()).toString("base64");
    http.push(["/sdapi/v1/img2img", { ...small, init_images: [png], mask: png }, 400, /masks are not supported/]);
    for (const [path, body, status, detail] of http) {
      const res = await post(path, body);
      const json = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, status, JSON.stringify(json).slice(0, 300));
      assert.deepEqual(Object.keys(json).sort(), ["body", "detail", "error", "errors"]);
      assert.equal(json.error, "HTTPException");
      assert.match(String(json.detail), detail);
      assert.equal(json.errors, `${status}: ${json.detail}`);
    }
    for (const path of ["/sdapi/v1/txt2img", "/sdapi/v1/interrupt"]) {
      const res = await fetch(`${srv.base}${path}`, { headers: { authorization: basicAuth(`u:${srv.key}`) } });
      assert.equal(res.status, 405);
      assert.equal(((await res.json()) as Record<string, unknown>).error, "HTTPException");
    }
    const unknownPath = await fetch(`${srv.base}/sdapi/v1/extra-single-image`, { method: "POST", headers: { authorization: basicAuth(`u:${srv.key}`) } });
    assert.equal(unknownPath.status, 404);
    assert.equal(((await unknownPath.json()) as Record<string, unknown>).error, "HTTPException");

    assert.equal(await srv.jobCount(), 0, "a refused request left a job");
    assert.equal(countFiles(images), filesBefore, "a refused request stored an image");
    assert.equal(await srv.balance(), balance, "a refused request was charged");
    const options = (await (await fetch(`${srv.base}/sdapi/v1/options`, { headers: { authorization: `Bearer ${srv.key}` } })).json()) as Record<string, unknown>;
    assert.deepEqual([options.sd_model_checkpoint, options.CLIP_stop_at_last_layers, options.samples_format], ["sd15", 1, "png"], "a refused options call changed an option");
  });

  test("img2img: the init image's size and A1111's default denoising strength; the infotext says it", async () => {
    const init = (await sharp({ create: { width: 64, height: 64, channels: 3, background: "#c03030" } }).png().toBuffer()).toString("base64");
    const res = await post("/sdapi/v1/img2img", { ...small, steps: 8, seed: 77, init_images: [`data:image/png;base64,${init}`], sampler_name: "Euler" });
    const data = (await res.json()) as { images: string[]; info: string; parameters: Record<string, unknown> };
    assert.equal(res.status, 200, JSON.stringify(data).slice(0, 300));
    const info = JSON.parse(data.info) as Record<string, unknown>;
    assert.equal(info.denoising_strength, 0.75);
    assert.equal(info.seed, 77);
    assert.equal(data.parameters.init_images, null, "init images are echoed only with include_init_images");
    assert.match((info.infotexts as string[])[0], /Steps: 8, Sampler: Euler, Schedule type: Uniform, CFG scale: [\d.]+, Seed: 77, Size: 64x64, Model: sd15, Denoising strength: 0\.75$/);
    const png = await readPng(data.images[0]);
    assert.deepEqual([png.width, png.height], [64, 64]);
    assert.match(png.parameters ?? "", /Seed: 77, Size: 64x64, Model: sd15, Denoising strength: 0\.75$/);
  });

  test("legacy 'DPM++ 2M Karras' runs dpmpp_2m_karras exactly; 'Euler a' + Karras runs its nearest, with a warning", async () => {
    const legacy = await post("/sdapi/v1/txt2img", { ...small, sampler_name: "DPM++ 2M Karras", seed: 5 });
    const a = (await legacy.json()) as { info: string; images: string[] };
    assert.equal(legacy.status, 200, JSON.stringify(a).slice(0, 300));
    const info = JSON.parse(a.info) as Record<string, unknown>;
    assert.equal(info.sampler_name, "DPM++ 2M");
    assert.equal((info.extra_generation_params as Record<string, string>)["Schedule type"], "Karras");
    assert.equal(legacy.headers.get("x-easel-warnings"), null);
    assert.match((await readPng(a.images[0])).parameters ?? "", /Sampler: DPM\+\+ 2M, Schedule type: Karras,/);

    const near = await post("/sdapi/v1/txt2img", { ...small, sampler_name: "Euler a", scheduler: "Karras", seed: 5 });
    const b = (await near.json()) as { info: string };
    assert.equal(near.status, 200, JSON.stringify(b));
    const warnings = JSON.parse(near.headers.get("x-easel-warnings") ?? "[]") as { code: string; message: string }[];
    assert.deepEqual(warnings.map((w) => w.code), ["W_SAMPLER_SUBSTITUTED"]);
    assert.match(warnings[0].message, /Euler a.*Karras.*euler_a/);
    assert.deepEqual((JSON.parse(b.info) as { warnings: unknown }).warnings, warnings);
  });

  test("samples_format set by POST options: later images are JPEG with the parameters in EXIF; Bearer keys work too", async () => {
    const bearer = `Bearer ${srv.key}`;
    const set = await post("/sdapi/v1/options", { samples_format: "jpg" }, bearer);
    assert.equal(set.status, 200);
    const res = await post("/sdapi/v1/txt2img", { ...small, seed: 9 }, bearer);
    const data = (await res.json()) as { images: string[] };
    assert.equal(res.status, 200, JSON.stringify(data).slice(0, 300));
    const bytes = Buffer.from(data.images[0], "base64");
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, "jpeg");
    assert.ok(meta.exif?.includes(Buffer.from("ASCII\0\0\0a blue square\nSteps: 3, ", "latin1")), "no UserComment with the parameters");
    await post("/sdapi/v1/options", { samples_format: "png" }, bearer);
  });

  test("an interrupted call that is still connected answers 499 in A1111's shape; the job is cancelled, not charged", async () => {
    const balance = await srv.balance();
    const call = post("/sdapi/v1/txt2img", { ...small, steps: 400, sampler_name: "Euler" });
    const auth = { authorization: `Bearer ${srv.key}` };
    let running = false;
    for (let i = 0; i < 600 && !running; i++) {
      const p = (await (await fetch(`${srv.base}/sdapi/v1/progress?skip_current_image=true`, { headers: auth })).json()) as Record<string, unknown>;
      running = Number((p.state as Record<string, number>).sampling_step) >= 1;
      if (running) assert.equal(p.current_image, null, "skip_current_image");
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(running, "the call never started");
    const interrupt = await fetch(`${srv.base}/sdapi/v1/interrupt`, { method: "POST", headers: auth });
    assert.equal(interrupt.status, 200);
    const res = await call;
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 499, JSON.stringify(body).slice(0, 300));
    assert.equal(body.error, "HTTPException");
    assert.equal(res.headers.get("x-easel-error-code"), "E_CANCELLED");
    assert.equal(await srv.balance(), balance);
  });

  test("GET /sdapi/v1/loras lists the models directory's loras/ folder in the Lora extension's shape", async () => {
    const auth = { authorization: `Bearer ${srv.key}` };
    assert.deepEqual(await (await fetch(`${srv.base}/sdapi/v1/loras`, { headers: auth })).json(), []);
    mkdirSync(join(srv.dataDir, "models", "loras"), { recursive: true });
    writeFileSync(join(srv.dataDir, "models", "loras", "ink-wash.safetensors"), "");
    writeFileSync(join(srv.dataDir, "models", "loras", "notes.txt"), "");
    assert.deepEqual(await (await fetch(`${srv.base}/sdapi/v1/loras`, { headers: auth })).json(), [
      { name: "ink-wash", alias: "ink-wash", path: "loras/ink-wash.safetensors", metadata: {} },
    ]);
  });
});

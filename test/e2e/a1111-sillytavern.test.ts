/**
 * SillyTavern's `auto` (SD Web UI) image source against the real server, as SillyTavern 1.12.6 (ba6f7b7) sends it:
 * its server routes in src/endpoints/stable-diffusion.js forward the browser's calls with
 * `Authorization: getBasicAuthHeader(auth)` (auth is the "user:password" setting): /ping → GET options, /upscalers
 * → GET upscalers + latent-upscale-modes, /vaes → GET sd-vae, /samplers, /schedulers, /models → GET sd-models,
 * /get-model → GET options, /set-model → POST options {sd_model_checkpoint} then GET progress until progress is 0
 * and job_count 0, /generate → POST txt2img with the extension's whole body (generateAutoImage in
 * public/scripts/extensions/stable-diffusion/index.js, its own `url` and `auth` included), reading images[0]; when
 * the browser goes away mid-generation it POSTs /interrupt and aborts the txt2img call.
 * The body's values are the extension's defaults (DDIM, schedule "normal", CFG 7, clip skip 1) except the size and
 * step count, which a user sets, lowered here to keep the test short.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type A1111Server, basicAuth, readPng, startA1111Server } from "./a1111-harness.ts";

describe("SillyTavern (auto source) against Easel", () => {
  let srv: A1111Server;
  let authSetting = "";
  before(async () => {
    srv = await startA1111Server({ withKey: true, credits: 1000 });
    authSetting = `sillytavern:${srv.key}`;
  });
  after(() => srv?.close());

  const headers = () => ({ Authorization: basicAuth(authSetting) });
  const get = async (path: string) => {
    const res = await fetch(`${srv.base}${path}`, { method: "GET", headers: headers() });
    assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`);
    return res.json() as Promise<unknown>;
  };
  const getProgress = () => get("/sdapi/v1/progress") as Promise<{ progress: number; eta_relative: number; state: Record<string, number | string>; current_image: string | null }>;

  /** generateAutoImage's body (getSdRequestBody() spreads url and auth into it). */
  const generateBody = (extra: Record<string, unknown> = {}) =>
    JSON.parse(
      JSON.stringify({
        url: srv.base,
        auth: authSetting,
        prompt: "a green triangle, white background",
        negative_prompt: "lowres, bad anatomy, bad hands, text, error, cropped, worst quality, low quality",
        sampler_name: "DDIM",
        scheduler: "normal",
        steps: 6,
        cfg_scale: 7,
        width: 128,
        height: 128,
        restore_faces: false,
        enable_hr: false,
        hr_upscaler: "Latent",
        hr_scale: 2.0,
        denoising_strength: 0.7,
        hr_second_pass_steps: 0,
        seed: undefined,
        override_settings: { CLIP_stop_at_last_layers: 1, sd_vae: undefined },
        override_settings_restore_afterwards: true,
        clip_skip: 1,
        save_images: true,
        send_images: true,
        do_not_save_grid: false,
        do_not_save_samples: false,
        ...extra,
      }),
    );

  test("settings page: ping, upscalers, vaes, samplers, schedulers, models, get-model, set-model with progress polling", async () => {
    await get("/sdapi/v1/options");
    const upscalers = ((await get("/sdapi/v1/upscalers")) as { name: string }[]).map((x) => x.name);
    const latent = ((await get("/sdapi/v1/latent-upscale-modes")) as { name: string }[]).map((x) => x.name);
    upscalers.splice(1, 0, ...latent);
    assert.deepEqual(upscalers, []);
    const vaes = (await get("/sdapi/v1/sd-vae")) as { model_name: string }[];
    assert.ok(Array.isArray(vaes));
    const samplers = ((await get("/sdapi/v1/samplers")) as { name: string }[]).map((x) => x.name);
    for (const name of ["DPM++ 2M", "Euler a", "Euler", "DDIM", "UniPC"]) assert.ok(samplers.includes(name), name);
    const schedulers = ((await get("/sdapi/v1/schedulers")) as { name: string }[]).map((x) => x.name);
    for (const name of ["automatic", "karras", "normal", "uniform"]) assert.ok(schedulers.includes(name), name);
    const models = ((await get("/sdapi/v1/sd-models")) as { title: string }[]).map((x) => ({ value: x.title, text: x.title }));
    for (const id of ["sd15", "sd15-b"]) assert.ok(models.some((m) => m.value === id && m.text === id), id);
    assert.equal(((await get("/sdapi/v1/options")) as Record<string, unknown>).sd_model_checkpoint, "sd15");

    const set = await fetch(`${srv.base}/sdapi/v1/options`, {
      method: "POST",
      body: JSON.stringify({ sd_model_checkpoint: "sd15-b" }),
      headers: { "Content-Type": "application/json", ...headers() },
    });
    assert.ok(set.ok);
    let idle = false;
    for (let attempt = 0; attempt < 10 && !idle; attempt++) {
      const p = await getProgress();
      idle = p.progress === 0.0 && p.state.job_count === 0;
    }
    assert.ok(idle, "progress never reported idle");
    assert.equal(((await get("/sdapi/v1/options")) as Record<string, unknown>).sd_model_checkpoint, "sd15-b");
  });

  test("generate: txt2img with the extension's body; images[0] is a PNG carrying its parameters", async () => {
    const res = await fetch(`${srv.base}/sdapi/v1/txt2img`, {
      method: "POST",
      body: JSON.stringify(generateBody()),
      headers: { "Content-Type": "application/json", ...headers() },
    });
    const data = (await res.json()) as { images: string[]; info: string; parameters: Record<string, unknown> };
    assert.equal(res.status, 200, JSON.stringify(data));
    const png = await readPng(data.images[0]);
    assert.deepEqual([png.width, png.height], [128, 128]);
    assert.equal(png.flat, false);
    assert.match(png.parameters ?? "", /^a green triangle, white background\nNegative prompt: lowres, .*\nSteps: 6, Sampler: DDIM, Schedule type: Uniform, CFG scale: 7, Seed: \d+, Size: 128x128, Model: sd15-b$/);
    const info = JSON.parse(data.info) as Record<string, unknown>;
    assert.equal(info.sampler_name, "DDIM");
    assert.equal((info.extra_generation_params as Record<string, string>)["Schedule type"], "Normal");
    assert.equal(info.sd_model_name, "sd15-b");
    // SillyTavern's own url and auth fields are not A1111 parameters: never echoed back.
    assert.equal(data.parameters.auth, undefined);
    assert.equal(data.parameters.url, undefined);
    // The defaults SillyTavern sends (enable_hr false, CLIP stop 1, s_* unset) raise no warnings.
    assert.equal(res.headers.get("x-easel-warnings"), null);
    // save_images: true keeps the image in the store; the job API hands out its URL.
    const job = (await (await fetch(`${srv.base}/v1/jobs/${res.headers.get("x-easel-job-id")}`, { headers: { authorization: `Bearer ${srv.key}` } })).json()) as {
      images: { url: string | null }[];
    };
    assert.ok(job.images[0]?.url, "the image was not stored");
    const stored = await fetch(job.images[0].url as string);
    assert.equal(stored.status, 200);
    assert.deepEqual(Buffer.from(await stored.arrayBuffer()), Buffer.from(data.images[0], "base64"));
  });

  test("the browser goes away mid-generation: /interrupt cancels the key's running job, nothing charged", async () => {
    const balance = await srv.balance();
    const jobsBefore = await srv.jobCount();
    const controller = new AbortController();
    const call = fetch(`${srv.base}/sdapi/v1/txt2img`, {
      method: "POST",
      body: JSON.stringify(generateBody({ sampler_name: "Euler", steps: 400, width: 64, height: 64 })),
      headers: { "Content-Type": "application/json", ...headers() },
      signal: controller.signal,
    }).catch((e: unknown) => e);
    let seen: Awaited<ReturnType<typeof getProgress>> | undefined;
    for (let i = 0; i < 600 && !seen; i++) {
      const p = await getProgress();
      if (Number(p.state.sampling_step) >= 2 && p.current_image) seen = p;
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen, "the running job never showed progress with a preview");
    assert.equal(seen.state.job_count, 1);
    assert.equal(seen.state.sampling_steps, 400);
    assert.ok(seen.progress > 0 && seen.progress < 1, String(seen.progress));
    assert.ok(seen.eta_relative > 0);
    assert.match(String(seen.state.job), /^job_/);
    const preview = await readPng(seen.current_image as string);
    assert.deepEqual([preview.width, preview.height], [64, 64]);

    // request.socket.on('close') in SillyTavern's /generate: POST /interrupt, then abort the txt2img call.
    const interrupt = await fetch(`${srv.base}/sdapi/v1/interrupt`, { method: "POST", headers: headers() });
    assert.equal(interrupt.status, 200);
    assert.deepEqual(await interrupt.json(), {});
    controller.abort();
    await call;

    let idle = false;
    for (let i = 0; i < 200 && !idle; i++) {
      const p = await getProgress();
      idle = p.progress === 0 && p.state.job_count === 0;
      if (!idle) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(idle, "progress did not return to idle");
    const job = (await (await fetch(`${srv.base}/v1/jobs/${seen.state.job}`, { headers: { authorization: `Bearer ${srv.key}` } })).json()) as Record<string, unknown>;
    assert.equal(job.status, "cancelled");
    assert.equal(job.creditsCharged, 0);
    assert.equal(await srv.jobCount(), jobsBefore + 1);
    assert.equal(await srv.balance(), balance, "credits were charged for an interrupted job");
  });
});

/**
 * LibreChat's Stable Diffusion tool against the real server, as danny-avila/LibreChat
 * api/app/clients/tools/structured/StableDiffusion.js (at 00b3bc3) calls it: `axios.post(SD_WEBUI_URL +
 * "/sdapi/v1/txt2img", {prompt, negative_prompt, cfg_scale: 4.5, steps: 22, width: 1024, height: 1024})` with no
 * credentials (so against a server without keys, on loopback), then `images[0]` (split at the first ",", base64),
 * `JSON.parse(info)` and from it `infotexts[0]` (its last line is kept as the generation info, the whole text is
 * written into the saved PNG), `seed`, `width` and `height`. The server's default model is the micro sdxl fixture
 * (1024x1024 is SDXL's size; the micro sd15 fixture's full-resolution attention would take minutes there).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Agent, fetch as undiciFetch } from "undici";
import { type A1111Server, readPng, startA1111Server } from "./a1111-harness.ts";

describe("LibreChat's stable-diffusion tool against Easel (open server)", () => {
  let srv: A1111Server;
  before(async () => {
    srv = await startA1111Server({ withKey: false, defaultModel: "sdxl" });
  });
  after(() => srv?.close());

  test("the tool's payload verbatim: a 1024x1024 PNG, and the info fields the tool reads", async (t) => {
    const prompt = "photo of a lighthouse at dusk, detailed, coastline, overcast weather, wind, waves, soft lighting";
    const negative_prompt = "semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, low quality";
    const payload = { prompt, negative_prompt, cfg_scale: 4.5, steps: 22, width: 1024, height: 1024 };
    const t0 = performance.now();
    // axios.post with a plain object: JSON, no Authorization header (and, like axios, no response timeout: on a busy
    // machine this image takes minutes, past fetch's default 300 s wait for headers).
    const agent = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
    const res = await undiciFetch(`${srv.base}/sdapi/v1/txt2img`, {
      dispatcher: agent,
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/plain, */*" },
      body: JSON.stringify(payload),
    });
    const data = (await res.json()) as { images: string[]; info: string };
    await agent.close();
    t.diagnostic(`micro sdxl 1024x1024, 22 steps: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(res.status, 200, JSON.stringify(data).slice(0, 300));

    const image = data.images[0];
    const buffer = Buffer.from(image.split(",", 1)[0], "base64");
    const info = JSON.parse(data.info) as { height: number; width: number; seed: number; infotexts: string[] };
    const generationInfo = info.infotexts[0].split("\n").pop();
    assert.equal(info.width, 1024);
    assert.equal(info.height, 1024);
    assert.ok(Number.isInteger(info.seed) && info.seed >= 0, String(info.seed));
    assert.equal(
      generationInfo,
      `Steps: 22, Sampler: ${JSON.parse(data.info).sampler_name}, Schedule type: Automatic, CFG scale: 4.5, Seed: ${info.seed}, Size: 1024x1024, Model: sdxl`,
    );
    assert.equal(info.infotexts[0], `${prompt}\nNegative prompt: ${negative_prompt}\n${generationInfo}`);

    const png = await readPng(buffer.toString("base64"));
    assert.deepEqual([png.width, png.height], [1024, 1024]);
    assert.equal(png.flat, false);
    assert.ok(png.parameters?.startsWith(`${prompt}\nNegative prompt: ${negative_prompt}\nSteps: 22, `), png.parameters);
    assert.match(png.parameters ?? "", new RegExp(`CFG scale: 4\\.5, Seed: ${info.seed}, Size: 1024x1024, Model: sdxl$`));
    // The job is recorded under the open server.
    assert.equal(await srv.jobCount(), 1);
  });
});

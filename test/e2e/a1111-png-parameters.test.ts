/**
 * The `parameters` metadata on every dialect's images, through the real server (micro sd15): an OpenAI Images
 * answer's PNG carries A1111's infotext with the seed the server reports, and `images.parametersMetadata: false`
 * leaves images without it.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type A1111Server, readPng, startA1111Server } from "./a1111-harness.ts";

const body = {
  model: "sd15",
  prompt: "a yellow star: small, centred",
  negative_prompt: "text",
  size: "64x64",
  steps: 3,
  guidance_scale: 6,
  seed: 4242,
  response_format: "b64_json",
};

async function generate(srv: A1111Server) {
  const res = await fetch(`${srv.base}/v1/images/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { data: { b64_json: string; seed: number }[] };
  assert.equal(res.status, 200, JSON.stringify(json).slice(0, 300));
  return { png: await readPng(json.data[0].b64_json), seed: json.data[0].seed };
}

describe("generation parameters in PNGs of another dialect (OpenAI Images)", () => {
  const servers: A1111Server[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  test("the PNG's parameters chunk is A1111's infotext of the request, and parses back", async () => {
    const srv = await startA1111Server({ withKey: false });
    servers.push(srv);
    const { png, seed } = await generate(srv);
    assert.equal(seed, 4242);
    const text = png.parameters ?? "";
    const [prompt, negative, params] = text.split("\n");
    assert.equal(prompt, body.prompt);
    assert.equal(negative, "Negative prompt: text");
    // A1111's parser: comma-separated `Key: value` pairs, values with a comma or colon JSON-quoted.
    const pairs = Object.fromEntries([...params.matchAll(/\s*([\w ]+): ("(?:\\.|[^"])*"|[^,]*)(?:,|$)/g)].map((m) => [m[1], m[2].startsWith('"') ? JSON.parse(m[2]) : m[2]]));
    assert.equal(pairs.Steps, "3");
    assert.equal(pairs["CFG scale"], "6");
    assert.equal(pairs.Seed, "4242");
    assert.equal(pairs.Size, "64x64");
    assert.equal(pairs.Model, "sd15");
    // No scheduler asked and none in the model's defaults: the checkpoint's own ran, and no Sampler is claimed.
    assert.equal(pairs.Sampler, undefined, params);
  });

  test("a scheduler asked for is named the way A1111 names it (sampler and schedule type)", async () => {
    const srv = servers[0];
    const res = await fetch(`${srv.base}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, scheduler: "dpmpp_2m_karras" }),
    });
    const json = (await res.json()) as { data: { b64_json: string }[] };
    assert.equal(res.status, 200, JSON.stringify(json).slice(0, 300));
    const png = await readPng(json.data[0].b64_json);
    assert.match(png.parameters ?? "", /\nSteps: 3, Sampler: DPM\+\+ 2M, Schedule type: Karras, CFG scale: 6, Seed: 4242, Size: 64x64, Model: sd15$/);
  });

  test("images.parametersMetadata false: no parameters chunk", async () => {
    const srv = await startA1111Server({ withKey: false, flags: { images: { parametersMetadata: false } } });
    servers.push(srv);
    const { png } = await generate(srv);
    assert.equal(png.parameters, undefined);
    assert.equal(png.flat, false);
  });
});

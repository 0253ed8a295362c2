/**
 * The web page's "Copy as request" (web/src/requests.ts) against each dialect's own request schema: every body it
 * writes passes that dialect's validation, a curl's quoted body reads back as written, and settings a dialect cannot
 * express get a reason instead of a request.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { z } from "zod";
import { img2imgBody, txt2imgBody } from "../../src/dialects/a1111/schema.ts";
import { playgroundBody as monicaPlaygroundBody } from "../../src/dialects/monica-playground/schema.ts";
import { sdBody } from "../../src/dialects/monica-sd/schema.ts";
import { generationBody } from "../../src/dialects/openai/schema.ts";
import { externalBody } from "../../src/dialects/playground/schema.ts";
import { segmindBody } from "../../src/dialects/segmind/schema.ts";
import type { Model } from "../../web/src/api.ts";
import { type RequestText, requestTexts, type Settings, shellQuote } from "../../web/src/requests.ts";

const BASE = "http://127.0.0.1:8080";

function model(id: string, kind: Model["kind"], aliases: string[] = []): Model {
  return {
    id,
    family: "test",
    kind,
    backend: "local",
    aliases,
    defaults: { width: 1024, height: 1024, steps: 30, guidanceScale: 5 },
    limits: { sizeMultiple: 8, minSize: 64, maxSize: 2048, maxImages: 4, maxSteps: 1000, guidance: { min: 0, max: 50 }, negativePrompt: true, img2img: { defaultStrength: 0.8 } },
    schedulers: [],
  };
}

const base: Settings = {
  prompt: "a lighthouse, it's dusk",
  negativePrompt: "",
  model: "",
  width: 1024,
  height: 1024,
  steps: 25,
  guidance: 3,
  scheduler: "",
  seed: 42,
  n: 1,
  initImage: null,
  strength: 0.6,
};

/** The URL path and JSON body of a curl command as the page writes it. */
function parseCurl(text: string): { path: string; body: Record<string, unknown> } {
  const url = /^curl -sS (\S+)/.exec(text)?.[1];
  const quoted = /-d '((?:[^']|'\\'')*)'$/.exec(text)?.[1];
  assert.ok(url && quoted !== undefined, text);
  return { path: new URL(url).pathname, body: JSON.parse(quoted.replace(/'\\''/g, "'")) as Record<string, unknown> };
}

function byId(texts: RequestText[], id: string): RequestText {
  const t = texts.find((x) => x.id === id);
  assert.ok(t, id);
  return t;
}

function accepted(schema: z.ZodType, t: RequestText): { path: string; body: Record<string, unknown> } {
  assert.ok("text" in t, `${t.id}: ${"unavailable" in t ? t.unavailable : ""}`);
  const parsed = parseCurl(t.text);
  const r = schema.safeParse(parsed.body);
  assert.ok(r.success, `${t.id}: ${JSON.stringify(r.error?.issues)}`);
  return parsed;
}

describe("Copy as request", () => {
  test("shell quoting survives a single quote", () => {
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
  });

  test("a Playground v2.5 model: every dialect's body passes that dialect's schema", () => {
    const m = model("playground-v2.5", "edm", ["playground-v2-5"]);
    const texts = requestTexts({ ...base, model: m.id, scheduler: "edm_euler" }, m, BASE);
    assert.equal(accepted(generationBody, byId(texts, "openai")).path, "/v1/images/generations");
    const pg = accepted(externalBody, byId(texts, "playground"));
    assert.deepEqual([pg.path, pg.body.filter_model, pg.body.scheduler, pg.body.prompt], ["/api/models/external/v1", "Playground_v2.5", "EULER", "a lighthouse, it's dusk"]);
    assert.match(String((byId(texts, "monica") as { unavailable: string }).unavailable), /no sampler field/);
    assert.match(String((byId(texts, "segmind") as { unavailable: string }).unavailable), /no sampler field/);

    const plain = requestTexts({ ...base, model: m.id }, m, BASE);
    const monica = accepted(monicaPlaygroundBody, byId(plain, "monica"));
    assert.deepEqual([monica.path, monica.body.model, monica.body.step], ["/v1/image/gen/playground", "playground-v2-5", 25]);
    const seg = accepted(segmindBody, byId(plain, "segmind"));
    assert.deepEqual([seg.path, seg.body.samples, seg.body.num_inference_steps], ["/v1/playground-v2.5", 1, 25]);
    assert.match((byId(plain, "segmind") as { text: string }).text, /-H "x-api-key: \$EASEL_API_KEY"/);
    const a = accepted(txt2imgBody, byId(plain, "a1111"));
    assert.deepEqual(a.body.override_settings, { sd_model_checkpoint: "playground-v2.5" });
  });

  test("sdxl through Monica's sd route with a Monica sampler name; sizes Monica lacks are refused with the list", () => {
    const m = model("sdxl", "vp");
    const texts = requestTexts({ ...base, model: m.id, scheduler: "euler_a", n: 2 }, m, BASE);
    const monica = accepted(sdBody, byId(texts, "monica"));
    assert.deepEqual([monica.path, monica.body.model, monica.body.scheduler, monica.body.num_outputs], ["/v1/image/gen/sd", "sdxl", "K_EULER_ANCESTRAL", 2]);
    const odd = requestTexts({ ...base, model: m.id, width: 512, height: 512 }, m, BASE);
    assert.match((byId(odd, "monica") as { unavailable: string }).unavailable, /1024x1024, 1344x768, 768x1344/);
    assert.match((byId(odd, "playground") as { unavailable: string }).unavailable, /sdxl is none of them/);
  });

  test("img2img: A1111 and Playground carry the starting image; OpenAI, Monica and Segmind say they cannot", () => {
    const m = model("playground-v2.5", "edm");
    const png = "data:image/png;base64,iVBORw0KGgo=";
    const texts = requestTexts({ ...base, model: m.id, initImage: png }, m, BASE);
    const a = accepted(img2imgBody, byId(texts, "a1111"));
    assert.deepEqual([a.path, a.body.init_images, a.body.denoising_strength], ["/sdapi/v1/img2img", ["iVBORw0KGgo="], 0.6]);
    const pg = accepted(externalBody, byId(texts, "playground"));
    assert.deepEqual([pg.body.init_image, pg.body.strength], ["iVBORw0KGgo=", 0.6]);
    for (const id of ["openai", "openai-sdk", "monica", "segmind"]) assert.ok("unavailable" in byId(texts, id), id);
  });

  test("a random seed is left out (or -1 for A1111); Playground's seed range is checked", () => {
    const m = model("playground-v2.5", "edm");
    const texts = requestTexts({ ...base, model: m.id, seed: null }, m, BASE);
    assert.equal(accepted(generationBody, byId(texts, "openai")).body.seed, undefined);
    assert.equal(accepted(txt2imgBody, byId(texts, "a1111")).body.seed, -1);
    const big = requestTexts({ ...base, model: m.id, seed: 70000 }, m, BASE);
    assert.match((byId(big, "playground") as { unavailable: string }).unavailable, /1 to 65535/);
  });
});

/**
 * Every inbound dialect to every provider type, against a real upstream Easel on loopback (its HTTP server,
 * dialects, keys and credits are real; its executor paints images at once so 1024x1024 answers stay fast). Each
 * gateway maps the dialects' model names to one provider type; the upstream's own job list shows which of its wire
 * formats each request arrived in.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { bearer, type Gateway, post, startFastUpstream, startGateway, type Upstream, warningsOf } from "./harness.ts";

type ProviderType = "openai" | "segmind" | "monica" | "playground";

/** Per type: how the provider is configured, the upstream models for the Playground v2.5 names and for sdxl, the wire dialect. */
const TYPES: Record<ProviderType, { baseUrl: (u: string) => string; extra?: object; pg: string; sdxl: string; wire: string[] }> = {
  openai: { baseUrl: (u) => `${u}/v1`, extra: { easelExtensions: true }, pg: "playground-v2.5", sdxl: "sdxl", wire: ["openai"] },
  segmind: { baseUrl: (u) => u, pg: "playground-v2.5", sdxl: "playground-v2.5", wire: ["segmind"] },
  monica: { baseUrl: (u) => u, pg: "playground-v2-5", sdxl: "sdxl", wire: ["monica-playground", "monica-sd"] },
  playground: { baseUrl: (u) => u, pg: "Playground_v2.5", sdxl: "Playground_v2.5", wire: ["playground"] },
};

interface Answer {
  status: number;
  images: Buffer[];
  jobId: string | null;
  res: Response;
  body: unknown;
}

/** One request per inbound dialect, each with its images read the dialect's way. */
const DIALECTS: Record<string, (gw: Gateway) => Promise<Answer>> = {
  async openai(gw) {
    const res = await post(gw.url, "/v1/images/generations", { model: "playground-v2.5", prompt: "a lighthouse", size: "1024x1024", response_format: "b64_json" }, bearer(gw.key));
    const body = (await res.json()) as { data?: { b64_json: string }[] };
    return { status: res.status, res, body, jobId: res.headers.get("x-easel-job-id"), images: (body.data ?? []).map((d) => Buffer.from(d.b64_json, "base64")) };
  },
  async "monica-playground"(gw) {
    const res = await post(gw.url, "/v1/image/gen/playground", { model: "playground-v2-5", prompt: "a lighthouse", count: 1, size: "1024x1024" }, bearer(gw.key));
    const body = (await res.json()) as { data?: { url: string }[] };
    const images = await Promise.all((body.data ?? []).map(async (d) => Buffer.from(await (await fetch(d.url)).arrayBuffer())));
    return { status: res.status, res, body, jobId: res.headers.get("x-easel-job-id"), images };
  },
  async "monica-sd"(gw) {
    const res = await post(gw.url, "/v1/image/gen/sd", { model: "sdxl", prompt: "a lighthouse", num_inference_steps: 25, cfg_scale: 5 }, bearer(gw.key));
    const body = (await res.json()) as { data?: { url: string }[] };
    const images = await Promise.all((body.data ?? []).map(async (d) => Buffer.from(await (await fetch(d.url)).arrayBuffer())));
    return { status: res.status, res, body, jobId: res.headers.get("x-easel-job-id"), images };
  },
  async playground(gw) {
    const body0 = { prompt: "a lighthouse", filter_model: "Playground_v2.5", width: 1024, height: 1024, num_inference_steps: 25 };
    const res = await post(gw.url, "/api/models/external/v1", body0, bearer(gw.key));
    const body = (await res.json()) as { images?: string[] };
    return { status: res.status, res, body, jobId: res.headers.get("x-easel-job-id"), images: (body.images ?? []).map((b) => Buffer.from(b, "base64")) };
  },
  async segmind(gw) {
    const res = await post(gw.url, "/v1/playground-v2.5", { prompt: "a lighthouse", samples: 1, num_inference_steps: 20, base64: true }, { "x-api-key": gw.key });
    const body = (await res.json()) as { images?: string[] };
    return { status: res.status, res, body, jobId: res.headers.get("x-easel-job-id"), images: (body.images ?? []).map((b) => Buffer.from(b, "base64")) };
  },
};

/** The newest jobs the upstream recorded for a key (its own job API). */
async function upstreamJobs(up: Upstream, key: string, limit = 5): Promise<{ dialect: string; params: Record<string, unknown>; seed: number }[]> {
  const res = await fetch(`${up.url}/v1/jobs?limit=${limit}`, { headers: bearer(key) });
  return ((await res.json()) as { data: { dialect: string; params: Record<string, unknown>; seed: number }[] }).data;
}

async function gatewayJob(gw: Gateway, id: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${gw.url}/v1/jobs/${id}`, { headers: bearer(gw.key) })).json()) as Record<string, unknown>;
}

const upstream = await startFastUpstream({ gw: null });
after(() => upstream.close());

for (const [type, t] of Object.entries(TYPES) as [ProviderType, (typeof TYPES)[ProviderType]][]) {
  describe(`every inbound dialect to a ${type} provider`, () => {
    let gw: Gateway;
    before(async () => {
      gw = await startGateway({
        providers: { up: { type, baseUrl: t.baseUrl(upstream.url), apiKey: upstream.keys.gw, ...t.extra } },
        models: {
          entries: {
            "playground-v2.5": { provider: "up", upstreamModel: t.pg, aliases: ["playground-v2-5", "Playground_v2.5"] },
            sdxl: { provider: "up", upstreamModel: t.sdxl },
          },
        },
      });
    });
    after(() => gw.close());

    for (const [dialect, ask] of Object.entries(DIALECTS)) {
      test(`${dialect} -> ${type}`, async () => {
        const a = await ask(gw);
        assert.equal(a.status, 200, JSON.stringify(a.body));
        assert.equal(a.images.length, 1);
        const meta = await sharp(a.images[0]).metadata();
        assert.deepEqual([meta.width, meta.height], [1024, 1024]);
        assert.equal(meta.format, dialect === "segmind" ? "jpeg" : "png", "the client's own format, transcoded where the upstream answered another");
        assert.ok(a.jobId);
        const job = await gatewayJob(gw, a.jobId);
        const route = job.route as { target: { providerType: string; provider: string }; attempts: { outcome: string }[]; latencyMs: number };
        assert.equal(route.target.providerType, type);
        assert.equal(route.target.provider, "up");
        assert.deepEqual(route.attempts.map((x) => x.outcome), ["ok"]);
        assert.ok(route.latencyMs >= 0);
        assert.ok(Number(a.res.headers.get("x-easel-credits-charged")) > 0, "the gateway's key paid its own price");
        const [last] = await upstreamJobs(upstream, upstream.keys.gw, 1);
        assert.ok(t.wire.includes(last.dialect), `the upstream was asked in its ${type} wire format, got ${last.dialect}`);
      });
    }
  });
}

describe("mapping details against the real upstream", () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway({
      providers: {
        seg: { type: "segmind", baseUrl: upstream.url, apiKey: upstream.keys.gw },
        mon: { type: "monica", baseUrl: upstream.url, apiKey: upstream.keys.gw },
        pg: { type: "playground", baseUrl: upstream.url, apiKey: upstream.keys.gw },
      },
      models: {
        entries: {
          "seg-pg": { provider: "seg", upstreamModel: "playground-v2.5" },
          "mon-sdxl": { provider: "mon", upstreamModel: "sdxl" },
          "mon-sd3": { provider: "mon", upstreamModel: "sd3" },
          "pg-small": { provider: "pg", upstreamModel: "Playground_v2.5", kind: "vp", aliases: ["Playground_v2.5"] },
        },
      },
    });
  });
  after(() => gw.close());

  test("n fan-out: 3 images from a provider that makes one per request, consecutive seeds, W_PARAM_ADAPTED", async () => {
    const before = upstream.generations.length;
    const res = await post(gw.url, "/v1/images/generations", { model: "seg-pg", prompt: "x", n: 3, seed: 500, response_format: "b64_json" }, bearer(gw.key));
    const body = (await res.json()) as { data: { seed: number; b64_json: string }[] };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.data.map((d) => d.seed), [500, 501, 502]);
    assert.equal(new Set(body.data.map((d) => d.b64_json)).size, 3, "three different images");
    assert.deepEqual(upstream.generations.slice(before).map((g) => [g.n, g.seed]).sort(), [[1, 500], [1, 501], [1, 502]]);
    const w = warningsOf(res);
    assert.ok(w.some((x) => x.code === "W_PARAM_ADAPTED" && x.param === "n" && /3 requests/.test(x.message)), JSON.stringify(w));
    assert.ok(w.some((x) => x.code === "W_PARAM_ADAPTED" && x.param === "output_format" && /jpeg/.test(x.message)));
  });

  test("Monica sdxl takes up to 4 per request: n 4 is one request; the scheduler goes by Monica's name", async () => {
    const before = upstream.generations.length;
    const res = await post(gw.url, "/v1/images/generations", { model: "mon-sdxl", prompt: "x", n: 4, size: "1344x768", scheduler: "K_EULER_ANCESTRAL", response_format: "b64_json" }, bearer(gw.key));
    assert.equal(res.status, 200, await res.clone().text());
    const gens = upstream.generations.slice(before);
    assert.deepEqual(gens.map((g) => [g.n, g.width, g.height, g.scheduler]), [[4, 1344, 768, "euler_a"]]);
    assert.deepEqual(warningsOf(res), []);
  });

  test("Monica sd3 answers WebP: a webp request keeps its quality, a png one is transcoded with a warning", async () => {
    const before = upstream.generations.length;
    const webp = await post(gw.url, "/v1/images/generations", { model: "mon-sd3", prompt: "x", output_format: "webp", output_compression: 40, response_format: "b64_json" }, bearer(gw.key));
    assert.equal(webp.status, 200, await webp.clone().text());
    assert.deepEqual(upstream.generations.slice(before).map((g) => [g.output.format, g.output.quality]), [["webp", 40]]);
    assert.deepEqual(warningsOf(webp), []);
    const png = await post(gw.url, "/v1/images/generations", { model: "mon-sd3", prompt: "x", response_format: "b64_json" }, bearer(gw.key));
    assert.ok(warningsOf(png).some((w) => w.param === "output_format" && /webp/.test(w.message)));
  });

  test("what a target cannot honour is a 400 naming the field before anything runs (no job, no upstream call)", async () => {
    const before = upstream.generations.length;
    const cases: [string, object, string][] = [
      ["seg-pg", { size: "512x512" }, "size"],
      ["mon-sd3", { negative_prompt: "blur" }, "negative_prompt"],
      ["pg-small", { seed: 70000, size: "64x64" }, "seed"],
      ["seg-pg", { steps: 5 }, "steps"],
    ];
    for (const [model, extra, param] of cases) {
      const res = await post(gw.url, "/v1/images/generations", { model, prompt: "x", ...extra }, bearer(gw.key));
      const body = (await res.json()) as { error: { param: string; message: string } };
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(body.error.param, param);
      assert.match(body.error.message, /provider "/);
    }
    assert.equal(upstream.generations.length, before);
    const jobs = (await (await fetch(`${gw.url}/v1/jobs?limit=100`, { headers: bearer(gw.key) })).json()) as { data: { status: string }[] };
    assert.ok(jobs.data.every((j) => j.status === "succeeded"), "refused requests left no job");
  });

  test("Playground img2img: the init image and strength reach the upstream; its scheduler name maps per kind", async () => {
    const init = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
    const before = upstream.generations.length;
    const res = await post(
      gw.url,
      "/api/models/external/v1",
      { prompt: "x", filter_model: "Playground_v2.5", width: 64, height: 64, init_image: init.toString("base64"), strength: 0.5, scheduler: "DPMPP_2M_K", num_inference_steps: 10 },
      bearer(gw.key),
    );
    // The gateway's Playground dialect resolves filter_model Playground_v2.5 to the local alias only if no entry
    // claims it; here pg-small is reached by its own name through the OpenAI dialect below.
    assert.equal(res.status, 200, await res.clone().text());
    const g = upstream.generations.slice(before);
    assert.equal(g.length, 1);
    assert.equal(g[0].strength, 0.5);
    assert.equal(Buffer.from(g[0].initImage ?? []).equals(init), true, "the init image's bytes reached the upstream");
    // The entry reads names for a vp model: DPMPP_2M_K -> dpmpp_2m_karras -> sent as DPMPP_2M_K, which the upstream
    // reads for its own (EDM) model.
    assert.equal(g[0].scheduler, "edm_dpmpp_2m");
  });

  test("GET /v1/models lists the upstream models beside the local one, each with its backend", async () => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: bearer(gw.key) });
    const data = ((await res.json()) as { data: { id: string; backend: string; owned_by: string }[] }).data;
    const byId = Object.fromEntries(data.map((m) => [m.id, m.backend]));
    const expected = { "seg-pg": "seg", "mon-sdxl": "mon", "mon-sd3": "mon", "pg-small": "pg", sd15: "local" };
    for (const [id, backend] of Object.entries(expected)) assert.equal(byId[id], backend, id);
    for (const m of data) if (!(m.id in expected)) assert.equal(m.backend, "local", `${m.id}: only local models besides the entries`);
    assert.equal(data.find((m) => m.id === "seg-pg")?.owned_by, "seg");
  });
});

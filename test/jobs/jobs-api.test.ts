/**
 * The job API (`GET /v1/jobs`, `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel`, `DELETE /v1/jobs/{id}`) over HTTP
 * with the real job service: a key sees, cancels and deletes only its own jobs, pages run newest first without gaps or repeats, records carry
 * signed image URLs and no image bytes, open mode sees its own jobs, and the routes are in the OpenAPI document.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import sharp from "sharp";
import type { GenerationRequest } from "../../src/core/types.ts";
import type { ImageProvider, ProviderGenerateOptions, ProviderResult } from "../../src/providers/spec.ts";
import { solidProvider } from "./helpers.ts";
import { type HttpHarness, httpHarness, keyHeaders } from "./http-harness.ts";

interface JobJson {
  id: string;
  status: string;
  dialect: string;
  model: string;
  params: Record<string, unknown>;
  seed: number | null;
  warnings: { code: string; param?: string }[];
  error: { code: string; message: string } | null;
  images: { url: string | null; seed: number; width: number; height: number; format: string }[];
  creditsReserved: number;
  creditsCharged: number;
  timings: { queuedMs: number | null; runMs: number | null };
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

interface ListJson {
  data: JobJson[];
  hasMore: boolean;
  lastId: string | null;
}

/** A provider whose next generations can be held (until released) or made to fail. */
function controllableProvider() {
  const solid = solidProvider();
  let hold: { promise: Promise<void>; release: () => void } | undefined;
  const started: string[] = [];
  const p = {
    id: "controllable",
    calls: 0,
    fail: undefined as Error | undefined,
    started,
    holdNext() {
      let release!: () => void;
      const promise = new Promise<void>((r) => (release = r));
      hold = { promise, release };
      return release;
    },
    async generate(req: GenerationRequest, opts: ProviderGenerateOptions): Promise<ProviderResult> {
      p.calls++;
      started.push(req.prompt);
      if (p.fail) throw p.fail;
      if (hold) {
        const h = hold;
        await new Promise<void>((resolve, reject) => {
          if (opts.signal?.aborted) return reject(opts.signal.reason);
          opts.signal?.addEventListener("abort", () => reject(opts.signal?.reason), { once: true });
          h.promise.then(resolve);
        });
      }
      return solid.generate(req, opts);
    },
  } satisfies ImageProvider & Record<string, unknown>;
  return p;
}

const json = <T>(res: LightMyRequestResponse): T => JSON.parse(res.body) as T;

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function assertNativeError(res: LightMyRequestResponse, status: number, code: string, param?: string | null): void {
  assert.equal(res.statusCode, status, res.body);
  const b = json<{ error: { code: string; message: string; param: string | null } }>(res);
  assert.deepEqual(Object.keys(b), ["error"]);
  assert.equal(b.error.code, code, res.body);
  assert.equal(typeof b.error.message, "string");
  if (param !== undefined) assert.equal(b.error.param, param);
  assert.equal(res.headers["x-easel-error-code"], code);
}

describe("the job API, with keys", () => {
  let h: HttpHarness;
  const provider = controllableProvider();
  let alice = "";
  let bob = "";
  let aliceId = "";
  before(async () => {
    h = await httpHarness({ provider, concurrency: 1, config: { server: { publicBaseUrl: "https://img.example.test" }, pricing: { default: { perImage: 1 } } } });
    const a = await h.admin.create({ name: "alice", credits: 100 });
    alice = a.key;
    aliceId = a.info.id;
    bob = (await h.admin.create({ name: "bob", credits: 100 })).key;
  });
  after(() => h?.dispose());

  const get = (url: string, key?: string) => h.app.inject({ method: "GET", url, headers: key ? keyHeaders(key) : {} });
  const generate = (key: string, prompt: string, extra: Record<string, unknown> = {}) =>
    h.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      payload: { model: "sd15", prompt, size: "64x64", steps: 1, ...extra },
      headers: { authorization: `Bearer ${key}` },
    });

  test("a key reads its own jobs: status, params, seed, signed image URLs, timings, times; no image bytes", async () => {
    // EULER_A has no EDM form: Playground v2.5 runs its nearest equivalent and says so, in the job record too.
    const r1 = await generate(alice, "a lighthouse", { model: "playground-v2.5", response_format: "url", seed: 42, scheduler: "EULER_A" });
    assert.equal(r1.statusCode, 200, r1.body);
    // Another size, so these bytes (images are content-addressed) were never stored by the first job.
    const r2 = await generate(alice, "a fox", { response_format: "b64_json", n: 2, size: "128x64" });
    assert.equal(r2.statusCode, 200, r2.body);
    const id1 = String(r1.headers["x-easel-job-id"]);
    const id2 = String(r2.headers["x-easel-job-id"]);

    const one = await get(`/v1/jobs/${id1}`, alice);
    assert.equal(one.statusCode, 200, one.body);
    const j = json<JobJson>(one);
    assert.equal(j.id, id1);
    assert.equal(j.status, "succeeded");
    assert.equal(j.dialect, "openai");
    assert.equal(j.model, "playground-v2.5");
    assert.equal(j.params.prompt, "a lighthouse");
    assert.equal(j.seed, 42);
    assert.equal(j.error, null);
    assert.ok(j.warnings.some((w) => w.code === "W_SAMPLER_SUBSTITUTED"), JSON.stringify(j.warnings));
    assert.equal(j.creditsCharged, j.creditsReserved);
    assert.ok(j.creditsCharged > 0);
    assert.ok(j.timings.queuedMs !== null && j.timings.queuedMs >= 0 && j.timings.runMs !== null && j.timings.runMs >= 0);
    assert.ok(Date.parse(j.createdAt) <= Date.parse(j.finishedAt ?? ""));
    assert.equal(j.images.length, 1);
    const img = j.images[0];
    assert.deepEqual([img.seed, img.width, img.height, img.format], [42, 64, 64, "png"]);
    assert.match(img.url ?? "", /^https:\/\/img\.example\.test\/v1\/files\/\S+$/, "signed, on the public base URL");
    const file = await h.app.inject({ method: "GET", url: new URL(img.url!).pathname });
    assert.equal(file.statusCode, 200);
    assert.equal((await sharp(file.rawPayload).metadata()).width, 64);

    // Images answered as base64 were not stored: no URL, and never the bytes.
    const two = json<JobJson>(await get(`/v1/jobs/${id2}`, alice));
    assert.equal(two.images.length, 2);
    assert.deepEqual(two.images.map((i) => i.url), [null, null]);
    const b64 = (json<{ data: { b64_json: string }[] }>(r2).data[0].b64_json).slice(0, 40);
    assert.ok(!JSON.stringify(two).includes(b64), "no image bytes in the record");

    const list = await get("/v1/jobs", alice);
    assert.equal(list.statusCode, 200, list.body);
    const l = json<ListJson>(list);
    assert.deepEqual(l.data.map((x) => x.id), [id2, id1], "newest first");
    assert.equal(Number(list.headers["x-remaining-credits"]), (await h.store.balance(aliceId))! / 1000, "the key's credits left");
    assert.equal(l.hasMore, false);
    assert.equal(l.lastId, id1);
  });

  test("another key's job is a 404, exactly like an unknown id, to read and to cancel; lists never mix keys", async () => {
    const mine = await generate(alice, "alice's cat");
    const id = String(mine.headers["x-easel-job-id"]);
    const bobsOwn = await h.app.inject({
      method: "POST",
      url: "/v1/playground-v2.5",
      payload: { prompt: "bob's dog", num_inference_steps: 20 },
      headers: { "x-api-key": bob },
    });
    assert.equal(bobsOwn.statusCode, 200, bobsOwn.body);
    const bobJob = String(bobsOwn.headers["x-easel-job-id"]);

    const foreign = await get(`/v1/jobs/${id}`, bob);
    assertNativeError(foreign, 404, "E_NOT_FOUND", "id");
    const unknown = await get("/v1/jobs/job_000000000000000000000000", bob);
    assertNativeError(unknown, 404, "E_NOT_FOUND", "id");
    assert.equal(json<{ error: { message: string } }>(foreign).error.message.replace(id, "X"), json<{ error: { message: string } }>(unknown).error.message.replace("job_000000000000000000000000", "X"));
    const cancel = await h.app.inject({ method: "POST", url: `/v1/jobs/${id}/cancel`, headers: { "x-api-key": bob } });
    assertNativeError(cancel, 404, "E_NOT_FOUND", "id");
    assert.equal(json<JobJson>(await get(`/v1/jobs/${id}`, alice)).status, "succeeded", "untouched");

    // Bob reads with the header his dialect uses (x-api-key) and sees only his job.
    const bobs = json<ListJson>(await h.app.inject({ method: "GET", url: "/v1/jobs", headers: { "x-api-key": bob } }));
    assert.deepEqual(bobs.data.map((x) => [x.id, x.dialect, x.params.prompt]), [[bobJob, "segmind", "bob's dog"]]);
    const alices = json<ListJson>(await get("/v1/jobs?limit=100", alice));
    assert.ok(alices.data.every((x) => x.id !== bobJob));
    assert.ok(alices.data.some((x) => x.id === id));
    // Bob's job as a cursor for Alice is refused like any id that is not hers.
    assertNativeError(await get(`/v1/jobs?after=${bobJob}`, alice), 400, "E_INPUT_INVALID", "after");
  });

  test("pages: limit and after walk every job once, newest first", async () => {
    for (let i = 0; i < 5; i++) assert.equal((await generate(alice, `page ${i}`)).statusCode, 200);
    const all = json<ListJson>(await get("/v1/jobs?limit=100", alice)).data.map((x) => x.id);
    assert.ok(all.length >= 5);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const url: string = `/v1/jobs?limit=2${cursor ? `&after=${cursor}` : ""}`;
      const page = json<ListJson>(await get(url, alice));
      assert.ok(page.data.length <= 2);
      seen.push(...page.data.map((x) => x.id));
      if (!page.hasMore) break;
      assert.equal(page.data.length, 2);
      cursor = page.lastId;
    }
    assert.deepEqual(seen, all);
    const created = json<ListJson>(await get("/v1/jobs?limit=100", alice)).data.map((x) => Date.parse(x.createdAt));
    assert.deepEqual(created, [...created].sort((a, b) => b - a));
    assert.deepEqual(json<ListJson>(await get("/v1/jobs?limit=1", alice)).data.map((x) => x.id), [all[0]]);
  });

  test("bad queries and missing keys answer Easel's error shape", async () => {
    for (const q of ["limit=0", "limit=101", "limit=abc", "limit=1.5"]) {
      const res = await get(`/v1/jobs?${q}`, alice);
      assertNativeError(res, 400, "E_INPUT_INVALID", "limit");
      assert.match(json<{ error: { message: string } }>(res).error.message, /Invalid value for 'limit'/);
    }
    assertNativeError(await get("/v1/jobs?after=job_nope", alice), 400, "E_INPUT_INVALID", "after");
    assertNativeError(await get("/v1/jobs"), 401, "E_AUTH_MISSING");
    assertNativeError(await get("/v1/jobs", "esk_not_a_key"), 401, "E_AUTH_INVALID");
    const wrongMethod = await h.app.inject({ method: "PUT", url: "/v1/jobs/job_x", headers: keyHeaders(alice) });
    assertNativeError(wrongMethod, 405, "E_METHOD_NOT_ALLOWED");
    assert.equal(wrongMethod.headers.allow, "GET, DELETE");
    assert.equal((await h.app.inject({ method: "GET", url: "/v1/jobs/job_x/cancel", headers: keyHeaders(alice) })).headers.allow, "POST");
    assert.equal((await h.app.inject({ method: "PUT", url: "/v1/jobs", headers: keyHeaders(alice) })).headers.allow, "GET, POST");
    // POST /v1/jobs submits a generation: a body without `dialect` is a bad request.
    assertNativeError(await h.app.inject({ method: "POST", url: "/v1/jobs", headers: keyHeaders(alice), payload: {} }), 400, "E_INPUT_INVALID");
    // An unknown path under /v1/jobs/ is Easel's 404, even with Segmind's key header.
    assertNativeError(await h.app.inject({ method: "GET", url: "/v1/jobs/a/b", headers: { "x-api-key": alice } }), 404, "E_NOT_FOUND");
  });

  test("cancel: a queued job ends cancelled at once and its reservation is released; a running one stops; a finished one is unchanged", async () => {
    const balance0 = await h.store.balance(aliceId);
    const release = provider.holdNext();
    try {
      const startedBefore = provider.started.length;
      const running = generate(alice, "held running");
      await until(() => provider.started.length > startedBefore, "the first job to start");
      const queued = generate(alice, "held queued");
      const list = async () => json<ListJson>(await get("/v1/jobs?limit=2", alice)).data;
      await until(async () => (await list()).some((x) => x.status === "queued"), "the second job to be queued");
      const jobs = await list();
      const q = jobs.find((x) => x.params.prompt === "held queued");
      const r = jobs.find((x) => x.params.prompt === "held running");
      assert.ok(q && r, JSON.stringify(jobs));
      assert.deepEqual([q.status, r.status], ["queued", "running"]);
      assert.equal(q.timings.queuedMs, null);
      assert.ok(q.creditsReserved > 0);

      const cq = await h.app.inject({ method: "POST", url: `/v1/jobs/${q.id}/cancel`, headers: { authorization: `Bearer ${alice}` } });
      assert.equal(cq.statusCode, 200, cq.body);
      const cancelledQ = json<JobJson>(cq);
      assert.equal(cancelledQ.status, "cancelled");
      assert.equal(cancelledQ.error?.code, "E_CANCELLED");
      assert.equal(cancelledQ.creditsCharged, 0);
      assert.equal((await queued).statusCode, 499, "the waiting client hears that its job was cancelled");

      const cr = await h.app.inject({ method: "POST", url: `/v1/jobs/${r.id}/cancel`, headers: { "x-api-key": alice } });
      assert.equal(cr.statusCode, 200, cr.body);
      assert.equal(json<JobJson>(cr).status, "cancelled", "answered once the running job has stopped");
      assert.equal((await running).statusCode, 499);
      assert.equal(await h.store.balance(aliceId), balance0, "nothing charged, every reservation released");
    } finally {
      // Frees the queue for the next tests even when an assertion above failed.
      release();
    }
    const done = await generate(alice, "finished");
    const doneId = String(done.headers["x-easel-job-id"]);
    const again = await h.app.inject({ method: "POST", url: `/v1/jobs/${doneId}/cancel`, headers: { authorization: `Bearer ${alice}` } });
    assert.equal(again.statusCode, 200);
    assert.equal(json<JobJson>(again).status, "succeeded", "a finished job is answered as it ended");
  });

  test("delete: the job leaves the key's history with its image; another key's job is a 404; a running job is cancelled first", async () => {
    const res = await generate(alice, "to delete", { response_format: "url", seed: 7, size: "64x128" });
    assert.equal(res.statusCode, 200, res.body);
    const id = String(res.headers["x-easel-job-id"]);
    const url = new URL(String(json<{ data: { url: string }[] }>(res).data[0].url)).pathname;
    assert.equal((await h.app.inject({ method: "GET", url })).statusCode, 200);
    const balance = await h.store.balance(aliceId);

    assertNativeError(await h.app.inject({ method: "DELETE", url: `/v1/jobs/${id}`, headers: { "x-api-key": bob } }), 404, "E_NOT_FOUND", "id");
    const del = await h.app.inject({ method: "DELETE", url: `/v1/jobs/${id}`, headers: keyHeaders(alice) });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal(del.body, "");
    assertNativeError(await get(`/v1/jobs/${id}`, alice), 404, "E_NOT_FOUND", "id");
    assert.ok(json<ListJson>(await get("/v1/jobs?limit=100", alice)).data.every((x) => x.id !== id));
    assert.equal((await h.app.inject({ method: "GET", url })).statusCode, 404, "the image is gone");
    assert.equal(await h.store.balance(aliceId), balance, "charged credits stay charged");
    assertNativeError(await h.app.inject({ method: "DELETE", url: `/v1/jobs/${id}`, headers: keyHeaders(alice) }), 404, "E_NOT_FOUND", "id");

    const release = provider.holdNext();
    try {
      const startedBefore = provider.started.length;
      const running = generate(alice, "deleted while running");
      await until(() => provider.started.length > startedBefore, "the job to start");
      const [r] = json<ListJson>(await get("/v1/jobs?limit=1", alice)).data;
      assert.equal(r.status, "running");
      assert.equal((await h.app.inject({ method: "DELETE", url: `/v1/jobs/${r.id}`, headers: keyHeaders(alice) })).statusCode, 204);
      assert.equal((await running).statusCode, 499, "the waiting client hears that its job was cancelled");
      assertNativeError(await get(`/v1/jobs/${r.id}`, alice), 404, "E_NOT_FOUND", "id");
    } finally {
      release();
    }
    assert.equal(await h.store.balance(aliceId), balance, "the cancelled job's reservation was released");
  });

  test("the dialect's own warnings are in the job record too, and once in the header", async () => {
    const res = await generate(alice, "warned", { quality: "hd", style: "vivid" });
    assert.equal(res.statusCode, 200, res.body);
    const header = JSON.parse(String(res.headers["x-easel-warnings"])) as { code: string; param?: string }[];
    assert.deepEqual(header.map((w) => w.param), ["quality", "style"]);
    const job = json<JobJson>(await get(`/v1/jobs/${res.headers["x-easel-job-id"]}`, alice));
    assert.deepEqual(job.warnings.map((w) => [w.code, w.param]), [["W_IGNORED", "quality"], ["W_IGNORED", "style"]]);

    const sd = await h.app.inject({
      method: "POST",
      url: "/v1/image/gen/sd",
      payload: { model: "sdxl", prompt: "warned", size: "1024x1024", num_inference_steps: 1, output_quality: 50 },
      headers: { authorization: `Bearer ${alice}` },
    });
    assert.equal(sd.statusCode, 200, sd.body);
    assert.equal(JSON.parse(String(sd.headers["x-easel-warnings"])).length, 1);
    const sdJob = json<JobJson>(await get(`/v1/jobs/${sd.headers["x-easel-job-id"]}`, alice));
    assert.deepEqual(sdJob.warnings.map((w) => w.param), ["output_quality"]);
  });

  test("a failed job records its error", async () => {
    provider.fail = new Error("engine exploded");
    try {
      const res = await generate(alice, "doomed");
      assert.equal(res.statusCode, 500);
    } finally {
      provider.fail = undefined;
    }
    const [latest] = json<ListJson>(await get("/v1/jobs?limit=1", alice)).data;
    assert.equal(latest.params.prompt, "doomed");
    assert.equal(latest.status, "failed");
    assert.equal(latest.error?.code, "E_INTERNAL");
    assert.doesNotMatch(latest.error?.message ?? "", /exploded/, "internals stay in the log");
    assert.deepEqual(latest.images, []);
  });

  test("the routes are in the OpenAPI document", async () => {
    const doc = json<{ paths: Record<string, Record<string, { tags?: string[] }>> }>(await h.app.inject({ method: "GET", url: "/openapi.json" }));
    assert.deepEqual(doc.paths["/v1/jobs"]?.get?.tags, ["Jobs"]);
    assert.ok(doc.paths["/v1/jobs/{id}"]?.get, JSON.stringify(Object.keys(doc.paths)));
    assert.ok(doc.paths["/v1/jobs/{id}/cancel"]?.post);
    assert.ok(doc.paths["/v1/jobs/{id}"]?.delete);
    assert.equal(doc.paths["/v1/jobs/{id}"]?.put, undefined, "405 routes stay hidden");
  });
});

describe("the job API in open mode", () => {
  let h: HttpHarness;
  before(async () => {
    h = await httpHarness({ openMode: true });
  });
  after(() => h?.dispose());

  test("without keys, the open principal sees the jobs made without a key", async () => {
    const res = await h.app.inject({ method: "POST", url: "/v1/images/generations", payload: { model: "sd15", prompt: "open", size: "64x64", steps: 1 } });
    assert.equal(res.statusCode, 200, res.body);
    const id = String(res.headers["x-easel-job-id"]);
    const res2 = await h.app.inject({ method: "GET", url: "/v1/jobs" });
    const list = json<ListJson>(res2);
    assert.deepEqual(list.data.map((x) => x.id), [id]);
    assert.equal(res2.headers["x-remaining-credits"], undefined, "no balance limit, no credits header");
    assert.equal(json<JobJson>(await h.app.inject({ method: "GET", url: `/v1/jobs/${id}` })).status, "succeeded");
  });
});

/**
 * Model-specific bad requests are refused before admission: for each family, a request one past each of its
 * limits (from the family's own limits on a tiny checkpoint of that family) is answered in the dialect's error
 * shape, and leaves no job row, no ledger entry, no generation and no rate-limit use.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import sharp from "sharp";
import { loadCheckpoint } from "../../src/checkpoint/checkpoint.ts";
import { configPaths } from "../../src/config/index.ts";
import type { ModelInfo } from "../../src/core/types.ts";
import { createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { createJobService, type JobService } from "../../src/jobs/job-service.ts";
import { familyFor } from "../../src/models/index.ts";
import { sd3TransformerConfigFromJson } from "../../src/models/sd3/config.ts";
import { buildMmditGraph } from "../../src/models/sd3/mmdit.graph.ts";
import { writeTinyCheckpoint } from "../../src/models/testing/tiny-checkpoint.ts";
import { createApp } from "../../src/server/app.ts";
import { createFsBlobStore } from "../../src/storage/fs-blob-store.ts";
import type { MetadataStore } from "../../src/storage/metadata-store.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { solidProvider, testConfig } from "./helpers.ts";

const work = mkdtempSync(join(tmpdir(), "easel-admission-"));

/** A tiny checkpoint of the family, described by the family itself (as the engine would), under a public id. */
function describeTiny(id: string, family: "sd15" | "sdxl" | "playground" | "sd3"): ModelInfo {
  const dir = join(work, id);
  writeTinyCheckpoint(dir, { family, seed: 1, transformer: (json, w) => buildMmditGraph(sd3TransformerConfigFromJson(json), w) });
  const ckpt = loadCheckpoint(dir);
  const f = familyFor(ckpt);
  const d = f.defaults(ckpt);
  // Small defaults so the one valid request at the end is cheap; the limits are the family's own.
  return { id, family: f.id, kind: f.kind(ckpt), backend: "local", aliases: [], defaults: { ...d, width: 64, height: 64, steps: 2 }, limits: f.limits(ckpt), created: 0 };
}

const MODELS: ModelInfo[] = [
  describeTiny("sd15", "sd15"),
  describeTiny("sdxl", "sdxl"),
  describeTiny("playground-v2.5", "playground"),
  describeTiny("sd3", "sd3"),
];

interface Case {
  name: string;
  url: string;
  body: Record<string, unknown>;
  status: number;
  /** The dialect's error shape, and the field it names. */
  shape: (body: Record<string, unknown>) => void;
}

const openaiShape = (param: string) => (b: Record<string, unknown>) => {
  const e = b.error as Record<string, unknown>;
  assert.equal(typeof e?.message, "string");
  assert.equal(e.param, param);
  assert.ok(["invalid_request_error"].includes(e.type as string), JSON.stringify(b));
};
const playgroundShape = (param: string) => (b: Record<string, unknown>) => {
  assert.equal(typeof b.error, "string");
  assert.ok(["INVALID_PARAMETER", "NOT_SUPPORTED"].includes(b.code as string), JSON.stringify(b));
  assert.equal(b.param, param);
};

function openai(model: ModelInfo, name: string, extra: Record<string, unknown>, param: string): Case {
  return { name: `openai ${model.id}: ${name}`, url: "/v1/images/generations", body: { model: model.id, prompt: "a cat", size: "64x64", ...extra }, status: 400, shape: openaiShape(param) };
}

/** One request past each limit a dialect can express, for every family. */
async function cases(): Promise<Case[]> {
  const out: Case[] = [];
  for (const m of MODELS) {
    const l = m.limits;
    out.push(openai(m, `steps ${l.maxSteps + 1}`, { steps: l.maxSteps + 1 }, "steps"));
    out.push(openai(m, `guidance ${l.guidance.max + 0.5}`, { guidance_scale: l.guidance.max + 0.5 }, "guidance_scale"));
    out.push(openai(m, `clip_skip ${l.maxClipSkip + 1}`, { clip_skip: l.maxClipSkip + 1 }, "clip_skip"));
    if (l.maxSequenceLength > 0) out.push(openai(m, `max_sequence_length ${l.maxSequenceLength + 1}`, { max_sequence_length: l.maxSequenceLength + 1 }, "max_sequence_length"));
    else out.push(openai(m, "max_sequence_length without T5", { max_sequence_length: 77 }, "max_sequence_length"));
    if (l.sizeMultiple > 8) {
      const s = 4 * l.sizeMultiple + 8;
      out.push(openai(m, `size ${s} (multiples of ${l.sizeMultiple})`, { size: `${s}x64` }, "width"));
    }
    if (l.maxSize < 2048) {
      const s = l.maxSize + l.sizeMultiple;
      out.push(openai(m, `size ${s} (at most ${l.maxSize})`, { size: `64x${s}` }, "height"));
    }
  }
  // img2img where a dialect carries an init image: Playground's own pipeline rule, int(steps * strength) >= 1.
  const png = (await sharp({ create: { width: 64, height: 64, channels: 3, background: "#808080" } }).png().toBuffer()).toString("base64");
  out.push({
    name: "playground playground-v2.5: strength 0.5 with 1 step leaves no denoising step",
    url: "/api/models/external/v1",
    body: { prompt: "a cat", width: 64, height: 64, num_inference_steps: 1, init_image: png, strength: 0.5 },
    status: 400,
    shape: playgroundShape("strength"),
  });
  return out;
}

describe("model limits are checked before admission, in every dialect", () => {
  let store: MetadataStore;
  let svc: JobService;
  let app: Awaited<ReturnType<typeof createApp>>;
  let key = "";
  let keyId = "";
  const provider = solidProvider();
  const config = testConfig();

  before(async () => {
    const paths = configPaths(config);
    store = await openSqliteStore(paths.dbFile);
    const byName = new Map(MODELS.map((m) => [m.id, m]));
    svc = createJobService({
      config,
      store,
      blobs: createFsBlobStore(paths.imagesDir),
      executor: () => provider,
      models: { list: () => MODELS, find: (n) => byName.get(n) },
    });
    app = await createApp({ config, images: svc });
    const created = await createKeyAdmin({ store }).create({ name: "limits", credits: 1000, rateLimitPerMinute: 1 });
    key = created.key;
    keyId = created.info.id;
  });
  after(async () => {
    await app?.close();
    await svc?.close();
    await store?.close();
    rmSync(configPaths(config).dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test("one past each limit: the dialect's 400, and no row, ledger entry, generation or rate-limit use", async () => {
    const all = await cases();
    assert.ok(all.length >= 18, `${all.length} cases`);
    const ledger0 = (await store.ledger(keyId)).length;
    for (const c of all) {
      const res = await app.inject({ method: "POST", url: c.url, payload: c.body, headers: { authorization: `Bearer ${key}`, "x-api-key": key } });
      assert.equal(res.statusCode, c.status, `${c.name}: ${res.body}`);
      c.shape(JSON.parse(res.body));
    }
    const db = new Database(configPaths(config).dbFile, { readonly: true });
    const rows = (db.prepare("SELECT count(*) AS n FROM jobs").get() as { n: number }).n;
    db.close();
    assert.equal(rows, 0, "no job rows");
    assert.equal((await store.ledger(keyId)).length, ledger0, "no ledger entries");
    assert.equal(provider.calls, 0, "nothing generated");
    // The key allows one request a minute: it is still unused, so a valid request is admitted.
    const ok = await app.inject({
      method: "POST",
      url: "/v1/images/generations",
      payload: { model: "sd15", prompt: "a cat", size: "64x64", response_format: "b64_json" },
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(ok.statusCode, 200, ok.body);
  });

  test("a sampler name that runs its nearest equivalent says so: W_SAMPLER_SUBSTITUTED in the header and the job record", async () => {
    const other = await createKeyAdmin({ store }).create({ name: "samplers", credits: 1000 });
    const res = await app.inject({
      method: "POST",
      url: "/v1/images/generations",
      // EULER_A has no EDM form: Playground v2.5 runs edm_dpmpp_2m_sde instead.
      payload: { model: "playground-v2.5", prompt: "a cat", size: "64x64", response_format: "b64_json", scheduler: "EULER_A" },
      headers: { authorization: `Bearer ${other.key}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    const warnings = JSON.parse(String(res.headers["x-easel-warnings"])) as { code: string; message: string }[];
    const w = warnings.find((x) => x.code === "W_SAMPLER_SUBSTITUTED");
    assert.ok(w, JSON.stringify(warnings));
    assert.match(w.message, /EULER_A.*edm_dpmpp_2m_sde/);
    const job = await store.getJob(String(res.headers["x-easel-job-id"]));
    assert.ok(job?.result?.warnings.some((x) => x.code === "W_SAMPLER_SUBSTITUTED"), "recorded with the job");
    // An exact mapping carries no warning.
    const exact = await app.inject({
      method: "POST",
      url: "/v1/images/generations",
      payload: { model: "playground-v2.5", prompt: "a cat", size: "64x64", response_format: "b64_json", scheduler: "DPMPP_2M_K" },
      headers: { authorization: `Bearer ${other.key}` },
    });
    assert.equal(exact.statusCode, 200, exact.body);
    assert.doesNotMatch(String(exact.headers["x-easel-warnings"] ?? ""), /W_SAMPLER_SUBSTITUTED/);
  });
});

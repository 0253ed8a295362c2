/** POST /admin/models/pull against the local hub-protocol server (test/helpers/hub-server.ts): progress, result, errors. */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { type FakeHub, filesUnder, startFakeHub } from "../../test/helpers/hub-server.ts";
import { loadConfig } from "../config/index.ts";
import type { KeyAdmin } from "../jobs/api-keys.ts";
import { adminRoutes } from "./admin-routes.ts";

const FIXTURE = resolve("test/fixtures/models/sd15");
const ADMIN = "admin-secret-0123456789";

let hub: FakeHub;
let tmp: string;
let app: FastifyInstance;

before(async () => {
  const files = filesUnder(FIXTURE);
  hub = await startFakeHub({ "tiny/micro-sd15": { files, commit: "89abcdef0123456789abcdef0123456789abcdef" } });
  tmp = mkdtempSync(join(tmpdir(), "easel-admin-pull-"));
  const config = loadConfig({ env: {}, flags: { dataDir: tmp, server: { adminKey: ADMIN }, hub: { endpoint: hub.endpoint } } });
  app = Fastify();
  await adminRoutes(app, { config, keys: {} as KeyAdmin });
});
after(async () => {
  await app.close();
  await hub.close();
  rmSync(tmp, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${ADMIN}` };

test("a pull started over the admin API reports progress and ends with the model in the models directory", async () => {
  const started = await app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "tiny/micro-sd15", variant: "fp16", name: "served" } });
  assert.equal(started.statusCode, 202, started.body);
  const { id, status } = started.json();
  assert.match(id, /^pull_/);
  assert.equal(status, "running");
  let body: { status: string; progress?: { doneBytes: number; totalBytes: number }; result?: { name: string }; error?: unknown } = { status: "running" };
  for (let i = 0; i < 200 && body.status === "running"; i++) {
    await new Promise((ok) => setTimeout(ok, 25));
    body = (await app.inject({ method: "GET", url: `/admin/models/pulls/${id}`, headers: auth })).json();
  }
  assert.equal(body.status, "done", JSON.stringify(body.error));
  assert.equal(body.result?.name, "served");
  assert.equal(body.progress?.doneBytes, body.progress?.totalBytes);
  assert.ok(existsSync(join(tmp, "models", "served", "unet", "diffusion_pytorch_model.fp16.safetensors")));
  const list = (await app.inject({ method: "GET", url: "/admin/models/pulls", headers: auth })).json();
  assert.deepEqual(
    list.data.map((p: { id: string }) => p.id),
    [id],
  );
});

test("bad input answers the request; a hub failure lands in the pull's record; the admin key is required", async () => {
  const bad = await app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "no-slash" } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().error.code, "E_INPUT_INVALID");
  const variant = await app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "a/b", variant: "fp8" } });
  assert.equal(variant.json().error.param, "variant");
  const noKey = await app.inject({ method: "POST", url: "/admin/models/pull", payload: { repo: "tiny/micro-sd15" } });
  assert.equal(noKey.statusCode, 401);

  const missing = await app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "tiny/missing" } });
  assert.equal(missing.statusCode, 202);
  let body = missing.json();
  for (let i = 0; i < 200 && body.status === "running"; i++) {
    await new Promise((ok) => setTimeout(ok, 25));
    body = (await app.inject({ method: "GET", url: `/admin/models/pulls/${body.id}`, headers: auth })).json();
  }
  assert.equal(body.status, "failed");
  assert.equal(body.error.code, "E_NOT_FOUND");
  assert.equal((await app.inject({ method: "GET", url: "/admin/models/pulls/pull_nope", headers: auth })).statusCode, 404);
});

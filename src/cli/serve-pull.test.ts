/**
 * A model pulled through the admin API while `easel serve` runs is served at once: listed by GET /v1/models and
 * generating, without a restart (the hub is test/helpers/hub-server.ts serving the tiny SD1.5 fixture).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { filesUnder, startFakeHub } from "../../test/helpers/hub-server.ts";
import { loadConfig } from "../config/index.ts";
import { startServer } from "./serve.ts";

const ADMIN = "admin-secret-0123456789";

test("a model pulled over the admin API is listed and generates without a restart", { timeout: 180_000 }, async () => {
  const hub = await startFakeHub({ "tiny/micro-sd15": { files: filesUnder(resolve("test/fixtures/models/sd15")), commit: "89abcdef0123456789abcdef0123456789abcdef" } });
  const root = mkdtempSync(join(tmpdir(), "easel-serve-pull-"));
  const modelsDir = join(root, "models");
  mkdirSync(modelsDir);
  const config = loadConfig({
    env: {},
    flags: { dataDir: join(root, "data"), server: { port: 0, adminKey: ADMIN }, models: { dir: modelsDir }, hub: { endpoint: hub.endpoint } },
  });
  const server = await startServer({ config, log: () => {} });
  try {
    const ids = async () => ((await server.app.inject({ method: "GET", url: "/v1/models" })).json().data as { id: string }[]).map((m) => m.id);
    assert.ok(!(await ids()).includes("pulled"));
    const auth = { authorization: `Bearer ${ADMIN}` };
    const started = await server.app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "tiny/micro-sd15", name: "pulled" } });
    assert.equal(started.statusCode, 202, started.body);
    let body = started.json();
    for (let i = 0; i < 400 && body.status === "running"; i++) {
      await new Promise((ok) => setTimeout(ok, 25));
      body = (await server.app.inject({ method: "GET", url: `/admin/models/pulls/${body.id}`, headers: auth })).json();
    }
    assert.equal(body.status, "done", JSON.stringify(body));
    assert.equal(body.served, true, JSON.stringify(body));
    assert.ok((await ids()).includes("pulled"));

    const gen = await server.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      payload: { model: "pulled", prompt: "a red circle", size: "64x64", response_format: "b64_json", steps: 2 },
    });
    assert.equal(gen.statusCode, 200, gen.body);
    assert.ok(Buffer.from(gen.json().data[0].b64_json, "base64").subarray(1, 4).toString() === "PNG");

    // A second pull under the same name is refused by the pull itself (the folder exists), before anything is fetched.
    const again = await server.app.inject({ method: "POST", url: "/admin/models/pull", headers: auth, payload: { repo: "tiny/micro-sd15", name: "pulled" } });
    assert.equal(again.statusCode, 400, again.body);
  } finally {
    await server.close();
    await hub.close();
    rmSync(root, { recursive: true, force: true });
  }
});

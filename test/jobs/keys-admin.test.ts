import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Fastify from "fastify";
import pg from "pg";
import { keysCommand } from "../../src/cli/keys.ts";
import { configPaths, loadConfig } from "../../src/config/index.ts";
import { authenticateKey, createKeyAdmin } from "../../src/jobs/api-keys.ts";
import { decideOpenMode, isLoopbackHost } from "../../src/jobs/open-mode.ts";
import { priceMillicredits } from "../../src/jobs/pricing.ts";
import { adminRoutes } from "../../src/server/admin-routes.ts";
import { openPostgresStore } from "../../src/storage/postgres.ts";
import { openSqliteStore } from "../../src/storage/sqlite.ts";
import { MODEL, request } from "./helpers.ts";

async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  let out = "";
  let err = "";
  const saved = process.exitCode;
  process.exitCode = 0;
  await keysCommand({ out: (s) => (out += s), err: (s) => (err += s), env }).parseAsync(args, { from: "user" });
  const code = process.exitCode;
  process.exitCode = saved;
  return { out, err, code };
}

test("easel keys: create prints the key once, the server's store sees it; list/show/add-credits/revoke", async () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-cli-"));
  try {
    const made = await cli(["create", "--name", "alice", "--credits", "2.5", "--rate-limit", "60/min", "--max-concurrent", "2", "--json", "--data-dir", dir]);
    assert.equal(made.code, 0, made.err);
    const k = JSON.parse(made.out);
    assert.match(k.key, /^esk_/);
    assert.deepEqual([k.name, k.credits, k.rateLimitPerMinute, k.maxConcurrent, k.status], ["alice", 2.5, 60, 2, "active"]);

    // The same directory through EASEL_DATA_DIR and through a store opened the way `easel serve` does.
    const listed = await cli(["list", "--json"], { EASEL_DATA_DIR: dir });
    assert.deepEqual(JSON.parse(listed.out).map((x: { id: string }) => x.id), [k.id]);
    assert.ok(!listed.out.includes(k.key), "secrets never appear in listings");
    const store = await openSqliteStore(configPaths(loadConfig({ env: {}, flags: { dataDir: dir } })).dbFile);
    const p = await authenticateKey(store, k.key, false);
    assert.equal(p.remainingCredits, 2.5);

    assert.equal(JSON.parse((await cli(["add-credits", k.id, "10", "--note", "top-up", "--json", "--data-dir", dir])).out).credits, 12.5);
    assert.equal((await authenticateKey(store, k.key, false)).remainingCredits, 12.5, "the server sees the new balance");
    const shown = await cli(["show", k.id, "--data-dir", dir]);
    assert.match(shown.out, /credits=12\.5/);
    assert.equal(JSON.parse((await cli(["revoke", k.id, "--json", "--data-dir", dir])).out).status, "revoked");
    await assert.rejects(authenticateKey(store, k.key, false), { code: "E_AUTH_INVALID" });
    await store.close();

    const missing = await cli(["show", "key_nope", "--data-dir", dir]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no API key/);
    const plain = await cli(["create", "--name", "bob", "--data-dir", dir]);
    assert.match(plain.out, /credits=unlimited/);
    assert.match(plain.out, /not shown again/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("easel keys on PostgreSQL (EASEL_DATABASE_URL): keys and webhooks land in the database every node shares", async (t) => {
  const pgAdmin = new pg.Client({ host: "127.0.0.1", port: 5432, database: "postgres", user: process.env.PGUSER ?? "postgres", connectionTimeoutMillis: 2000 });
  try {
    await pgAdmin.connect();
  } catch (e) {
    t.skip(`PostgreSQL not reachable at 127.0.0.1:5432: ${(e as Error).message}`);
    return;
  }
  const database = `easel_keys_${process.pid}_${Date.now().toString(36)}`;
  await pgAdmin.query(`create database ${database}`);
  const dir = mkdtempSync(join(tmpdir(), "easel-cli-pg-"));
  const env = {
    EASEL_DATA_DIR: dir,
    EASEL_DATABASE_URL: `postgres://${process.env.PGUSER ?? "postgres"}@127.0.0.1:5432/${database}`,
    EASEL_URL_SECRET: "keys-cli-test-url-signing-secret-0123456789",
  };
  const store = await openPostgresStore({ connectionString: env.EASEL_DATABASE_URL });
  try {
    const made = await cli(["create", "--name", "shared", "--json"], env);
    assert.equal(made.code, 0, made.err);
    const k = JSON.parse(made.out);
    assert.equal((await authenticateKey(store, k.key, false)).name, "shared", "the key is in PostgreSQL");
    assert.equal(existsSync(configPaths(loadConfig({ env: {}, flags: { dataDir: dir } })).dbFile), false, "no SQLite file was made");

    const hooked = await cli(["webhook", k.id, "--url", "https://hooks.example/easel", "--json"], env);
    assert.equal(hooked.code, 0, hooked.err);
    const h = JSON.parse(hooked.out);
    assert.match(h.webhookSecret, /^whsec_/);
    assert.equal(h.webhookUrl, "https://hooks.example/easel");
    assert.equal((await store.getKey(k.id))?.webhookUrl, "https://hooks.example/easel");
    const neither = await cli(["webhook", k.id], env);
    assert.equal(neither.code, 1);
    assert.match(neither.err, /--url <url> or --remove/);
    const removed = await cli(["webhook", k.id, "--remove"], env);
    assert.equal(removed.code, 0, removed.err);
    assert.match(removed.out, /webhook removed/);
    assert.equal((await store.getKey(k.id))?.webhookUrl, null);
  } finally {
    await store.close();
    await pgAdmin.query(`drop database if exists ${database}`);
    await pgAdmin.end();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("admin HTTP API: guarded by the admin key, same operations as the CLI", async () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-admin-"));
  const config = loadConfig({ env: {}, flags: { dataDir: dir, server: { adminKey: "admin-secret-0123456789" } } });
  const store = await openSqliteStore(configPaths(config).dbFile);
  const app = Fastify();
  await adminRoutes(app, { config, keys: createKeyAdmin({ store }) });
  const auth = { authorization: "Bearer admin-secret-0123456789" };
  try {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: "admin-secret-0123456789" }]) {
      const refused = await app.inject({ method: "GET", url: "/admin/keys", headers });
      assert.equal(refused.statusCode, 401);
      assert.match(String(refused.headers["x-easel-error-code"]), /^E_AUTH_(MISSING|INVALID)$/);
      assert.equal(refused.headers.connection, "close");
      assert.deepEqual(Object.keys(refused.json().error).sort(), ["code", "message", "param"]);
    }
    const created = await app.inject({ method: "POST", url: "/admin/keys", headers: auth, payload: { name: "svc", credits: 5 } });
    assert.equal(created.statusCode, 201);
    const k = created.json();
    assert.match(k.key, /^esk_/);
    assert.equal(k.credits, 5);
    const bad = await app.inject({ method: "POST", url: "/admin/keys", headers: auth, payload: { name: "x", credits: -1 } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.param, "credits");
    assert.equal((await app.inject({ method: "GET", url: "/admin/keys", headers: auth })).json().data.length, 1);
    const topped = await app.inject({ method: "POST", url: `/admin/keys/${k.id}/credits`, headers: auth, payload: { credits: 1.5 } });
    assert.equal(topped.json().credits, 6.5);
    assert.equal((await app.inject({ method: "POST", url: `/admin/keys/${k.id}/revoke`, headers: auth })).json().status, "revoked");
    assert.equal((await app.inject({ method: "GET", url: `/admin/keys/${k.id}`, headers: auth })).json().status, "revoked");
    assert.equal((await app.inject({ method: "GET", url: "/admin/keys/key_nope", headers: auth })).statusCode, 404);
  } finally {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const off = Fastify();
  await adminRoutes(off, { config: loadConfig({ env: {}, flags: { dataDir: dir } }), keys: createKeyAdmin({ store }) });
  assert.equal((await off.inject({ method: "GET", url: "/admin/keys" })).statusCode, 404, "no admin key: no admin API");
  await off.close();
});

test("open mode: loopback without keys runs open; other addresses refuse unless allowOpen", () => {
  const cfg = (server: Record<string, unknown>) => loadConfig({ env: {}, flags: { dataDir: "/tmp/x", server } });
  for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["0.0.0.0", "::", "192.168.1.5", "example.com"]) assert.equal(isLoopbackHost(h), false, h);
  assert.deepEqual(decideOpenMode(cfg({ host: "127.0.0.1" }), false), { open: true });
  assert.deepEqual(decideOpenMode(cfg({ host: "127.0.0.1" }), true), { open: false });
  const refused = decideOpenMode(cfg({ host: "0.0.0.0" }), false);
  assert.equal(refused.open, false);
  assert.match(refused.error ?? "", /refusing/);
  assert.deepEqual(decideOpenMode(cfg({ host: "0.0.0.0", allowOpen: true }), false), { open: true });
  assert.deepEqual(decideOpenMode(cfg({ host: "0.0.0.0" }), true), { open: false });
});

test("price scales with images, pixels and steps; default steps come from the model", () => {
  const config = loadConfig({
    env: {},
    flags: {
      dataDir: "/tmp/x",
      pricing: { default: { perImage: 1 }, models: { "tiny-sd": { perImage: 2, referencePixels: 512 * 512, referenceSteps: 20 } } },
    },
  });
  // 2 credits * 3 images * (1024*512 / 512*512 = 2) * (10/20) = 6 credits.
  assert.equal(priceMillicredits(config, MODEL, request({ n: 3, width: 1024, height: 512, steps: 10 })), 6000);
  // Model default 4 steps: 2 * 1 * (8*8/262144) * (4/20) = 0.0000976.. credits: the minimum, 0.001 credits.
  assert.equal(priceMillicredits(config, MODEL, request()), 1);
  const other = { ...MODEL, id: "other" };
  // Default price: 1 * (1024*1024 / 1024*1024) * (30/30).
  assert.equal(priceMillicredits(config, other, request({ width: 1024, height: 1024, steps: 30 })), 1000);
  // 0.7947.. credits, rounded up to the next millicredit.
  assert.equal(priceMillicredits(config, other, request({ width: 1000, height: 1000, steps: 25 })), 795);
});

test("key admin validates its input", async () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-kv-"));
  const store = await openSqliteStore(join(dir, "k.db"));
  try {
    const admin = createKeyAdmin({ store });
    await assert.rejects(admin.create({ name: "" }), { param: "name" });
    await assert.rejects(admin.create({ name: "x", rateLimitPerMinute: 0 }), { param: "rateLimitPerMinute" });
    await assert.rejects(admin.create({ name: "x", maxConcurrent: 1.5 }), { param: "maxConcurrent" });
    const { info } = await admin.create({ name: "x" });
    await assert.rejects(admin.addCredits(info.id, 5), { code: "E_INPUT_INVALID" }, "unlimited keys take no credits");
    await assert.rejects(admin.addCredits(info.id, 0), { param: "credits" });
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

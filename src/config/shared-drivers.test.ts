import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig, sharedDrivers, sharedUrlSecret } from "./index.ts";

const SECRET = "0123456789abcdef0123456789abcdef";

test("drivers come from the environment: PostgreSQL, Redis, the queue name and the URL secret", () => {
  const c = loadConfig({
    env: {
      EASEL_DATABASE_URL: "postgres://easel@db:5432/easel",
      EASEL_REDIS_URL: "redis://redis:6379/0",
      EASEL_QUEUE_NAME: "easel-prod",
      EASEL_URL_SECRET: SECRET,
    },
  });
  assert.equal(c.storage.databaseUrl, "postgres://easel@db:5432/easel");
  assert.equal(c.queue.redisUrl, "redis://redis:6379/0");
  assert.equal(c.queue.name, "easel-prod");
  assert.equal(c.server.urlSecret, SECRET);
  assert.deepEqual(sharedDrivers(c), ["storage.databaseUrl (PostgreSQL)", "queue.redisUrl (Redis)"]);
});

test("the embedded default shares nothing and needs no URL secret", () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.storage.databaseUrl, undefined);
  assert.equal(c.queue.redisUrl, undefined);
  assert.equal(c.queue.name, "easel");
  assert.deepEqual(sharedDrivers(c), []);
  assert.equal(sharedUrlSecret(c), undefined);
});

test("a shared driver without server.urlSecret is refused at start, naming the setting and the driver", () => {
  for (const env of [{ EASEL_DATABASE_URL: "postgres://db/easel" }, { EASEL_REDIS_URL: "redis://r:6379" }, { EASEL_S3_BUCKET: "b" }]) {
    const c = loadConfig({ env });
    assert.throws(() => sharedUrlSecret(c), (e: Error & { param?: string }) => {
      assert.equal(e.param, "server.urlSecret");
      assert.match(e.message, /EASEL_URL_SECRET/);
      assert.match(e.message, new RegExp(sharedDrivers(c)[0].split(" ")[0].replace(".", "\\.")));
      return true;
    });
  }
  assert.deepEqual(sharedUrlSecret(loadConfig({ env: { EASEL_REDIS_URL: "redis://r:6379", EASEL_URL_SECRET: SECRET } })), Buffer.from(SECRET));
});

test("bad driver settings are refused naming the key", () => {
  assert.throws(() => loadConfig({ env: { EASEL_DATABASE_URL: "mysql://db/easel" } }), /storage\.databaseUrl/);
  assert.throws(() => loadConfig({ env: { EASEL_REDIS_URL: "http://r:6379" } }), /queue\.redisUrl/);
  assert.throws(() => loadConfig({ env: { EASEL_URL_SECRET: "short" } }), /server\.urlSecret.*32/);
  assert.throws(() => loadConfig({ env: { EASEL_QUEUE_NAME: "a:b" } }), /queue\.name/);
});

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EaselError } from "../core/errors.ts";
import { configPaths, loadConfig } from "./index.ts";

test("defaults, then file, then env, then flags", () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-config-"));
  const file = join(dir, "easel.json");
  writeFileSync(file, JSON.stringify({ server: { port: 9000, host: "0.0.0.0" }, images: { urlTtlSeconds: 60 } }));
  const c = loadConfig({ file, env: { EASEL_PORT: "9100", EASEL_DATA_DIR: dir }, flags: { server: { host: "127.0.0.2" } } });
  assert.equal(c.server.port, 9100);
  assert.equal(c.server.host, "127.0.0.2");
  assert.equal(c.images.urlTtlSeconds, 60);
  assert.equal(c.images.retentionDays, 30);
  assert.equal(configPaths(c).dbFile, join(dir, "easel.db"));
  assert.ok(Object.isFrozen(c.server));
});

test("bad values are rejected with the path named", () => {
  assert.throws(
    () => loadConfig({ env: { EASEL_PORT: "70000" } }),
    (e: unknown) => e instanceof EaselError && e.param === "server.port",
  );
  assert.throws(() => loadConfig({ file: "/nonexistent/easel.json", env: {} }), /cannot read config file/);
});

test("HTTP limits: defaults, the proxy and CORS from the environment, a headers timeout past the request's refused", () => {
  const c = loadConfig({ env: {} });
  assert.deepEqual(
    [c.server.jsonBodyLimitBytes, c.server.imageBodyLimitBytes, c.server.requestTimeoutMs, c.server.headersTimeoutMs],
    [512 * 1024, 25 * 1024 * 1024, 60_000, 10_000],
  );
  assert.deepEqual([c.server.keepAliveTimeoutMs, c.server.maxConnections, c.server.trustProxy, c.server.corsOrigins], [5_000, 1024, false, []]);
  const env = loadConfig({ env: { EASEL_TRUST_PROXY: "1", EASEL_CORS_ORIGINS: "https://a.example, https://b.example" } });
  assert.equal(env.server.trustProxy, true);
  assert.deepEqual(env.server.corsOrigins, ["https://a.example", "https://b.example"]);
  assert.throws(
    () => loadConfig({ env: {}, flags: { server: { requestTimeoutMs: 1000, headersTimeoutMs: 2000 } } }),
    (e: unknown) => e instanceof EaselError && e.param === "server.headersTimeoutMs",
  );
});

test("an unknown key anywhere in the configuration is refused, naming it (a typo or a retired setting is not ignored)", () => {
  assert.throws(
    () => loadConfig({ env: {}, flags: { server: { bodyLimitBytes: 10 } } as never }),
    (e: unknown) => e instanceof EaselError && e.code === "E_INPUT_INVALID" && e.param === "server.bodyLimitBytes",
  );
  assert.throws(() => loadConfig({ env: {}, flags: { sever: {} } as never }), /unknown key sever/);
  // Records keep their own keys: model entries and providers by any name are fine.
  assert.doesNotThrow(() => loadConfig({ env: {}, flags: { models: { entries: { anything: { path: "x" } } } } }));
});

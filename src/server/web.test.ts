/**
 * Serving the web playground: the page, its styles and its script (bundled from web/src), each with the CSP that
 * keeps the page to this server; a broken script is a coded 500 that is tried again; `web: false` leaves it out.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Fastify from "fastify";
import { FakeImageService } from "../../test/http/fake-image-service.ts";
import { makeApp, testConfig } from "../../test/http/helpers.ts";
import { createApp } from "./app.ts";
import { WEB_DIR, webRoutes } from "./web.ts";

test("GET / is the page; its script and styles come from this server under a CSP that allows only this server", async () => {
  const { app } = await makeApp();
  const page = await app.inject({ method: "GET", url: "/" });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers["content-type"]), /^text\/html/);
  assert.match(page.body, /<script type="module" src="\/web\/app\.js"><\/script>/);
  assert.doesNotMatch(page.body, /https?:\/\//, "no asset from anywhere else");
  const csp = String(page.headers["content-security-policy"]);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /connect-src 'self'/);

  const js = await app.inject({ method: "GET", url: "/web/app.js" });
  assert.equal(js.statusCode, 200);
  assert.match(String(js.headers["content-type"]), /^text\/javascript/);
  assert.doesNotMatch(js.body, /^import /m, "one bundle: no module imports left for the browser to fetch");
  assert.match(js.body, /\/v1\/images\/generations/);
  const css = await app.inject({ method: "GET", url: "/web/styles.css" });
  assert.equal(css.statusCode, 200);
  assert.match(String(css.headers["content-type"]), /^text\/css/);

  const doc = JSON.parse((await app.inject({ method: "GET", url: "/openapi.json" })).body) as { paths: Record<string, unknown> };
  assert.equal(doc.paths["/"], undefined, "the page is not an API route");
});

test("a script that does not build is a coded 500, built again on the next request", async () => {
  const dir = mkdtempSync(join(tmpdir(), "easel-web-"));
  try {
    cpSync(WEB_DIR, dir, { recursive: true });
    const main = join(dir, "src", "main.ts");
    writeFileSync(main, "export const broken = ;\n");
    const app = Fastify();
    await webRoutes(app, { webDir: `${dir}/` });
    const bad = await app.inject({ method: "GET", url: "/web/app.js" });
    assert.equal(bad.statusCode, 500);
    writeFileSync(main, "export const fixed = 1;\n");
    const good = await app.inject({ method: "GET", url: "/web/app.js" });
    assert.equal(good.statusCode, 200, good.body);
    assert.match(good.body, /fixed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("createApp({ web: false }) serves no page", async () => {
  const app = await createApp({ config: testConfig(), images: new FakeImageService(), web: false });
  assert.equal((await app.inject({ method: "GET", url: "/" })).statusCode, 404);
  assert.equal((await app.inject({ method: "GET", url: "/web/app.js" })).statusCode, 404);
});

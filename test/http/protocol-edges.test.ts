/**
 * Protocol edges: the Authorization scheme, malformed paths, OPTIONS and CORS, answers outside every dialect,
 * signed file URLs' caching, and where image URLs take their host from. Every error is in a documented shape
 * with x-easel-error-code.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AUTH, expectOk, expectRejected, makeApp } from "./helpers.ts";
import { assertErrorShape, type Shape } from "./shapes.ts";

const ENDPOINTS: { shape: Shape; url: string; headers: Record<string, string>; payload: Record<string, unknown> }[] = [
  { shape: "openai", url: "/v1/images/generations", headers: AUTH, payload: { prompt: "x", size: "64x64" } },
  { shape: "openai", url: "/api/llm/images/generations", headers: AUTH, payload: { prompt: "x", size: "64x64" } },
  { shape: "monica-playground", url: "/v1/image/gen/playground", headers: AUTH, payload: { prompt: "x" } },
  { shape: "monica-sd", url: "/v1/image/gen/sd", headers: AUTH, payload: { model: "sdxl", prompt: "x" } },
  { shape: "playground", url: "/api/models/external/v1", headers: AUTH, payload: { prompt: "x", width: 64, height: 64 } },
  { shape: "segmind", url: "/v1/playground-v2.5", headers: { "x-api-key": "sk-test" }, payload: { prompt: "x" } },
];

describe("protocol edges", async () => {
  const { app, images } = await makeApp();

  test("a key without the Bearer scheme, or with another scheme, is refused (401) and the connection closes", async () => {
    for (const e of ENDPOINTS.filter((x) => x.shape !== "segmind")) {
      for (const authorization of ["sk-test", "Basic sk-test", "Token sk-test", "Bearer", "Bearer sk-test extra"]) {
        const res = await app.inject({ method: "POST", url: e.url, payload: e.payload, headers: { authorization } });
        const where = `${e.url} Authorization: ${authorization}`;
        assert.equal(res.statusCode, 401, where);
        assert.equal(assertErrorShape(e.shape, res, where), "E_AUTH_INVALID");
        assert.equal(res.headers.connection, "close", where);
      }
      await expectOk(app, { url: e.url, payload: e.payload, headers: { authorization: "bearer  sk-test" } });
    }
    assert.equal(images.charges.length, ENDPOINTS.length - 1, "only the Bearer requests ran");
  });

  test("a missing key is 401 and the connection closes", async () => {
    for (const e of ENDPOINTS) {
      const res = await app.inject({ method: "POST", url: e.url, payload: e.payload });
      assert.equal(assertErrorShape(e.shape, res, e.url), "E_AUTH_MISSING");
      assert.equal(res.headers.connection, "close", e.url);
    }
  });

  test("malformed percent-encoding in the path: 400 in the path's dialect shape (a bare 404 for files)", async () => {
    const cases: [string, Shape, Record<string, string>, number][] = [
      ["/v1/images/%zz", "openai", AUTH, 400],
      ["/v1/images/generations%E0%A4%A", "openai", AUTH, 400],
      ["/api/models/%", "playground", AUTH, 400],
      ["/v1/image/gen/%G1", "monica-playground", AUTH, 400],
      ["/v1/playground-v2.5%zz", "segmind", { "x-api-key": "sk-test" }, 400],
      ["/nowhere/%zz", "native", {}, 400],
    ];
    for (const [url, shape, headers, status] of cases) {
      for (const method of ["GET", "POST"] as const) {
        const res = await app.inject({ method, url, headers, payload: method === "POST" ? {} : undefined });
        assert.equal(res.statusCode, status, `${method} ${url}`);
        assertErrorShape(shape, res, `${method} ${url}`);
        assert.match(res.body, /malformed percent-encoding/, `${method} ${url}`);
      }
    }
    const file = await app.inject({ method: "GET", url: "/v1/files/%zz" });
    assert.equal(assertErrorShape("file", file, "GET /v1/files/%zz"), "E_NOT_FOUND");
    const tooLong = await app.inject({ method: "GET", url: `/v1/files/${"a".repeat(2000)}` });
    assert.equal(assertErrorShape("file", tooLong, "a 2000-character token"), "E_NOT_FOUND");
    const model = await app.inject({ method: "GET", url: `/v1/models/${"m".repeat(2000)}`, headers: AUTH });
    assert.equal(assertErrorShape("openai", model, "a 2000-character model name"), "E_NOT_FOUND");
    const posted = await app.inject({ method: "POST", url: "/v1/files/%zz", headers: AUTH, payload: {} });
    assertErrorShape("openai", posted, "POST /v1/files/%zz (no such route: the /v1/ dialect answers)");
  });

  test("OPTIONS is 405 with Allow where the path exists (in its dialect's shape), 404 where it does not", async () => {
    for (const e of ENDPOINTS) {
      const res = await app.inject({ method: "OPTIONS", url: e.url, headers: e.headers });
      assert.equal(res.statusCode, 405, e.url);
      assert.equal(res.headers.allow, "POST", e.url);
      assert.equal(assertErrorShape(e.shape, res, `OPTIONS ${e.url}`), "E_METHOD_NOT_ALLOWED");
    }
    const health = await app.inject({ method: "OPTIONS", url: "/healthz" });
    assert.equal(health.statusCode, 405);
    assert.equal(health.headers.allow, "GET, HEAD");
    assertErrorShape("native", health, "OPTIONS /healthz");
    const models = await app.inject({ method: "OPTIONS", url: "/v1/models", headers: AUTH });
    assert.equal(models.statusCode, 405);
    assertErrorShape("openai", models, "OPTIONS /v1/models");
    const nowhere = await app.inject({ method: "OPTIONS", url: "/nowhere" });
    assert.equal(nowhere.statusCode, 404);
    assertErrorShape("native", nowhere, "OPTIONS /nowhere");
    assert.equal(nowhere.headers["access-control-allow-origin"], undefined, "no CORS unless configured");
  });

  test("paths outside every dialect: Easel's own 404 with x-easel-error-code", async () => {
    for (const method of ["GET", "POST", "DELETE"] as const) {
      const res = await app.inject({ method, url: "/nowhere?x=1" });
      assert.equal(assertErrorShape("native", res, `${method} /nowhere`), "E_NOT_FOUND");
    }
    const file = await app.inject({ method: "GET", url: "/v1/files/forged" });
    assert.equal(assertErrorShape("file", file, "forged file token"), "E_NOT_FOUND");
  });

  test("a file URL is cacheable for as long as its token lives, no longer", async () => {
    const short = await makeApp({ fileTtlSeconds: 120 });
    const res = await expectOk(short.app, { url: "/v1/image/gen/playground", payload: { prompt: "x" }, headers: AUTH });
    const path = new URL(res.json().data[0].url).pathname;
    const file = await short.app.inject({ method: "GET", url: path });
    assert.equal(file.statusCode, 200);
    const maxAge = Number(/max-age=(\d+)/.exec(String(file.headers["cache-control"]))?.[1]);
    assert.ok(maxAge >= 118 && maxAge <= 120, `max-age ${maxAge} is the token's remaining life`);
  });
});

describe("image URLs never take their host from the client", async () => {
  const gen = (app: Awaited<ReturnType<typeof makeApp>>["app"], headers: Record<string, string>) =>
    expectOk(app, { url: "/v1/image/gen/playground", payload: { prompt: "x" }, headers: { ...AUTH, ...headers } }).then(
      (r) => new URL(r.json().data[0].url),
    );

  test("without publicBaseUrl: the server's own address, whatever Host or X-Forwarded-Host say", async () => {
    const { app } = await makeApp({}, { server: { host: "127.0.0.1", port: 8123 } });
    const spoofs: Record<string, string>[] = [{ host: "evil.example" }, { host: "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" }];
    for (const headers of spoofs) {
      const u = await gen(app, headers);
      assert.equal(u.host, "127.0.0.1:8123", JSON.stringify(headers));
      assert.equal(u.protocol, "http:");
    }
  });

  test("trustProxy: the proxy's X-Forwarded-Proto and -Host; a malformed one falls back to the server's address", async () => {
    const { app } = await makeApp({}, { server: { host: "127.0.0.1", port: 8123, trustProxy: true } });
    const u = await gen(app, { host: "internal:8123", "x-forwarded-host": "images.example.com", "x-forwarded-proto": "https" });
    assert.equal(u.origin, "https://images.example.com");
    const chained = await gen(app, { "x-forwarded-host": "spoofed.example, images.example.com:8443" });
    assert.equal(chained.origin, "http://images.example.com:8443", "the nearest proxy's entry");
    for (const bad of ["evil.example/path?", "a b", "evil.example@x", ""]) {
      const f = await gen(app, { host: "evil.example", "x-forwarded-host": bad });
      assert.equal(f.host, "127.0.0.1:8123", JSON.stringify(bad));
    }
    const noProxy = await gen(app, { host: "evil.example" });
    assert.equal(noProxy.host, "127.0.0.1:8123", "no X-Forwarded-Host: not the Host header either");
  });

  test("publicBaseUrl wins over everything", async () => {
    const { app } = await makeApp({}, { server: { publicBaseUrl: "https://cdn.example.com/easel", trustProxy: true } });
    const u = await gen(app, { host: "evil.example", "x-forwarded-host": "other.example" });
    assert.equal(u.origin, "https://cdn.example.com");
  });
});

describe("CORS (off by default)", async () => {
  const { app, images } = await makeApp({}, { server: { corsOrigins: ["https://app.example.com"] } });

  test("a preflight from an allowed origin is answered 204 with the CORS headers, before authentication", async () => {
    const res = await app.inject({
      method: "OPTIONS",
      url: "/v1/images/generations",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers["access-control-allow-origin"], "https://app.example.com");
    assert.match(String(res.headers["access-control-allow-methods"]), /POST/);
    assert.match(String(res.headers["access-control-allow-headers"]), /authorization/);
  });

  test("answers, errors included, expose Easel's headers to the allowed origin only", async () => {
    const ok = await expectOk(app, { url: "/v1/playground-v2.5", payload: { prompt: "x" }, headers: { "x-api-key": "sk-test", origin: "https://app.example.com" } });
    assert.equal(ok.headers["access-control-allow-origin"], "https://app.example.com");
    assert.match(String(ok.headers["access-control-expose-headers"]), /x-remaining-credits/);
    const { headers } = await expectRejected(app, images, { url: "/v1/images/generations", payload: { prompt: 1 }, headers: { ...AUTH, origin: "https://app.example.com" } }, 400);
    assert.equal(headers["access-control-allow-origin"], "https://app.example.com");
    assert.match(String(headers["access-control-expose-headers"]), /x-easel-error-code/);
    const other = await app.inject({ method: "POST", url: "/v1/images/generations", payload: { prompt: "x", size: "64x64" }, headers: { ...AUTH, origin: "https://evil.example" } });
    assert.equal(other.headers["access-control-allow-origin"], undefined);
  });
});

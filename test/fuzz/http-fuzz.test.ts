/**
 * Seeded fuzzing of the five generation endpoints through app.inject over the test image service: malformed JSON,
 * wrong types, out-of-range / huge / negative / non-finite numbers, Unicode, deep nesting, bad headers, bad methods,
 * bad paths, truncated bodies and random bytes. Every request is one the endpoint must refuse, so for each:
 * a 4xx (never a 5xx), the body and headers in the documented shape of the dialect the path belongs to
 * (x-easel-error-code always), nothing generated and nothing charged; afterwards the server is healthy and a valid
 * request still works.
 *
 * EASEL_FUZZ_SEED and EASEL_FUZZ_RUNS (per endpoint, default 2000) change the run; a failure prints the seed and
 * the shrunk request that reproduces it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { makeApp } from "../http/helpers.ts";
import { assertErrorShape, type Shape } from "../http/shapes.ts";
import { ENDPOINTS, type Endpoint, OPENAI_FIELDS } from "./endpoints.ts";

const SEED = Number(process.env.EASEL_FUZZ_SEED ?? 19_2026);
const RUNS = Number(process.env.EASEL_FUZZ_RUNS ?? 2000);

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "HEAD";

interface FuzzRequest {
  kind: string;
  method: Method | string;
  url: string;
  headers: Record<string, string>;
  payload?: string | Buffer;
}

const JSON_TYPE = { "content-type": "application/json" };

/** Methods the generation routes take (POST) or answer 405 for; others are unrouted. */
const ROUTED = new Set(["POST", "GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * The shape an answer must have: the endpoint's own on its route; elsewhere the dialect whose prefix the path is
 * under (docs/dialects.md), Segmind for /v1/ asked with x-api-key alone, the bare 404 of files, or Easel's own.
 */
function shapeFor(e: Endpoint, method: string, url: string, headers: Record<string, string>): Shape {
  const path = url.split("?")[0];
  if (path === e.url && ROUTED.has(method)) return e.shape;
  if ((method === "GET" || method === "HEAD") && /^\/v1\/files\/[^/]*$/.test(path)) return "file";
  if (path.startsWith("/v1/jobs/")) return "native";
  if (path.startsWith("/v1/") && headers["x-api-key"] !== undefined && headers.authorization === undefined) return "segmind";
  if (path.startsWith("/v1/image/")) return "monica-playground";
  if (path.startsWith("/api/models/")) return "playground";
  if (path.startsWith("/v1/") || path.startsWith("/api/llm/")) return "openai";
  return "native";
}

/** Characters that may replace or extend a path without adding segments, queries or dot-segments. */
const PATH_CHARS = fc.constantFrom(..."abcXYZ019-_~!$&'()*+,;=:@%".split(""), "%zz", "%E0%A4%A", "%00", "%2F", "%20", "\u00e9", "\u{1F600}");

function requests(e: Endpoint): fc.Arbitrary<FuzzRequest> {
  const fields = Object.keys(e.invalid);
  const validJson = JSON.stringify(e.valid);
  const post = (kind: string, payload: string | Buffer, headers: Record<string, string> = {}): FuzzRequest => ({
    kind,
    method: "POST",
    url: e.url,
    headers: { ...e.auth, ...JSON_TYPE, ...headers },
    payload,
  });

  /** Fields that do nothing but make the request look different (unknown fields are ignored outside OpenAI). */
  const noise = fc.dictionary(
    fc.string({ maxLength: 10 }).filter((k) => !(k in e.invalid) && (!e.strict || OPENAI_FIELDS.has(k))),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: e.strict ? 0 : 3 },
  );

  const badField = fc
    .tuple(fc.constantFrom(...fields), noise, fc.boolean())
    .chain(([field, extra, unicodePrompt]) =>
      e.invalid[field].chain((value) =>
        fc.string({ unit: "binary", minLength: 1, maxLength: 40 }).map((prompt) => {
          const body: Record<string, unknown> = { ...e.valid, ...extra };
          if (unicodePrompt && field !== "prompt") body.prompt = prompt;
          body[field] = value;
          return post(`field:${field}`, JSON.stringify(body));
        }),
      ),
    );

  const missingRequired = fc.constantFrom(...(["prompt", "model"] as const).filter((f) => f in e.invalid && f in e.valid)).map((f) => {
    const { [f]: _, ...rest } = e.valid;
    return post(`missing:${f}`, JSON.stringify(rest));
  });

  const unknownField = e.strict
    ? fc
        .tuple(fc.string({ unit: "binary", minLength: 1, maxLength: 12 }).filter((k) => !OPENAI_FIELDS.has(k) && k !== "__proto__"), fc.jsonValue({ maxDepth: 2 }))
        .map(([k, v]) => post("unknown-field", JSON.stringify({ ...e.valid, [k]: v })))
    : badField;

  const rawBody = fc.oneof(
    // Truncated: a JSON object cut anywhere before its closing brace is never valid.
    fc.integer({ min: 0, max: validJson.length - 1 }).map((n) => post("truncated", validJson.slice(0, n))),
    fc.uint8Array({ maxLength: 256 }).map((b) => post("random-bytes", Buffer.from(b))),
    fc.string({ unit: "binary", maxLength: 64 }).map((s) => post("random-text", s)),
    fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== "object" || v === null || Array.isArray(v)).map((v) => post("non-object", JSON.stringify(v))),
    fc.constantFrom("}", "]", ",", "x", "\u0000", '"').map((g) => post("trailing-garbage", `${validJson}${g}`)),
    fc.integer({ min: 1, max: 100_000 }).map((depth) => post("deep-nesting", `{"prompt":${"[".repeat(depth)}${"]".repeat(depth)}}`)),
    fc.integer({ min: 1, max: 100_000 }).map((depth) => post("deep-top-level", `${"[".repeat(depth)}${"]".repeat(depth)}`)),
    fc.integer({ min: 1, max: 5_000 }).map((depth) => post("deep-object", `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`)),
    fc
      .tuple(fc.constantFrom(...fields), fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", "+1", ".5", "1.", "1e", "--1", "1_0", "undefined"))
      .map(([f, lit]) => post(`number-literal:${f}`, `${validJson.slice(0, -1)},${JSON.stringify(f)}:${lit}}`)),
    fc.constantFrom("__proto__", "constructor").map((k) => post("prototype-key", `${validJson.slice(0, -1)},"${k}":{"prototype":{"polluted":true}}}`)),
    fc.constantFrom("prompt", ...fields).map((f) => post("duplicate-key", `${validJson.slice(0, -1)},${JSON.stringify(f)}:{"dup":[1]}}`)),
    fc.integer({ min: 1, max: 1000 }).map((extra) => post("content-length-long", validJson, { "content-length": String(validJson.length + extra) })),
    // Past the JSON routes' limit (512 KiB) and, for the init_image route, past its own (2 MiB in this app).
    fc.constantFrom(600 * 1024, 2 * 1024 * 1024 + 1).map((n) => post("oversized", `{"prompt":"${"x".repeat(n)}"}`)),
    fc.integer({ min: 1, max: validJson.length - 1 }).map((n) => post("content-length-short", validJson, { "content-length": String(validJson.length - n) })),
  );

  const badHeaders = fc.oneof(
    fc
      .constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "image/png", "application/jsonx", "json", "*/*")
      .map((ct) => post(`content-type:${ct}`, validJson, { "content-type": ct })),
    fc.constant(0).map(() => ({ ...post("no-content-type", validJson), headers: { ...e.auth } })),
    fc
      .oneof(
        fc.constant<Record<string, string>>({}),
        fc.constant<Record<string, string>>(e.shape === "segmind" ? { "x-api-key": "esk_wrong" } : { authorization: "Bearer esk_wrong" }),
        fc.constant<Record<string, string>>(e.shape === "segmind" ? { authorization: "Bearer sk-test" } : { authorization: "sk-test" }),
        fc.constant<Record<string, string>>(e.shape === "segmind" ? { "x-api-key": "" } : { authorization: "Basic c2stdGVzdA==" }),
        fc
          .string({ unit: "grapheme-ascii", minLength: 1, maxLength: 40 })
          .filter((s) => s.trim() === s && s !== "sk-test" && !/^Bearer\s+sk-test$/i.test(s))
          .map((s): Record<string, string> => (e.shape === "segmind" ? { "x-api-key": s } : { authorization: s })),
      )
      .map((auth: Record<string, string>): FuzzRequest => ({ kind: "auth", method: "POST", url: e.url, headers: { ...auth, ...JSON_TYPE }, payload: validJson })),
  );

  const badMethod = fc
    .constantFrom<Method | string>("GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND", "TRACE", "SEARCH")
    .map((method) => ({ kind: `method:${method}`, method, url: e.url, headers: { ...e.auth }, payload: undefined }));

  const badPath = fc.oneof(
    fc.array(PATH_CHARS, { minLength: 1, maxLength: 6 }).map((cs) => ({ ...post("path-suffix", validJson), url: `${e.url}${cs.join("")}` })),
    fc
      .tuple(fc.integer({ min: 1, max: e.url.length - 1 }), PATH_CHARS)
      .map(([i, c]) => `${e.url.slice(0, i)}${c}${e.url.slice(i + 1)}`)
      .filter((url) => url !== e.url)
      .map((url) => ({ ...post("path-changed", validJson), url })),
    fc.constantFrom("/", "//", "/v1", "/v1/", "/api/", "/api/llm/", "/v1/files/", "/v1/files/x/y", "/v2/images/generations").map((url) => ({
      ...post("path-other", validJson),
      url,
    })),
  );

  return fc.oneof(
    { arbitrary: badField, weight: 8 },
    { arbitrary: missingRequired, weight: 1 },
    { arbitrary: unknownField, weight: 1 },
    { arbitrary: rawBody, weight: 5 },
    { arbitrary: badHeaders, weight: 2 },
    { arbitrary: badMethod, weight: 1 },
    { arbitrary: badPath, weight: 2 },
  );
}

describe("HTTP fuzz: every malformed request is refused in the dialect's shape", { concurrency: false }, async () => {
  const { app, images } = await makeApp({}, { server: { imageBodyLimitBytes: 2 * 1024 * 1024 } });

  for (const e of ENDPOINTS) {
    test(`${e.url} (${e.shape}): ${RUNS} malformed requests, seed ${SEED}`, async (t) => {
      const statuses = new Map<number, number>();
      const kinds = new Map<string, number>();
      const started = performance.now();
      await fc.assert(
        fc.asyncProperty(requests(e), async (r) => {
          const before = { calls: images.calls.length, charges: images.charges.length };
          const res = await app.inject({ method: r.method as Method, url: r.url, headers: r.headers, payload: r.payload });
          const where = `${r.kind} ${r.method} ${r.url} ${JSON.stringify(r.headers)} ${String(r.payload ?? "").slice(0, 200)}`;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          kinds.set(r.kind.split(":")[0], (kinds.get(r.kind.split(":")[0]) ?? 0) + 1);
          assert.ok(res.statusCode >= 400 && res.statusCode < 500, `refused with a 4xx: ${where} -> ${res.statusCode} ${res.body.slice(0, 300)}`);
          const shape = shapeFor(e, r.method, r.url, r.headers);
          if (r.method === "HEAD") {
            assert.equal(res.body, "");
            assert.ok(typeof res.headers["x-easel-error-code"] === "string", `x-easel-error-code on HEAD: ${where}`);
          } else {
            assertErrorShape(shape, res, where);
          }
          assert.equal(images.calls.length, before.calls, `nothing generated: ${where}`);
          assert.equal(images.charges.length, before.charges, `nothing charged: ${where}`);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      const ms = Math.round(performance.now() - started);
      t.diagnostic(`${RUNS} requests in ${ms} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}; kinds ${JSON.stringify(Object.fromEntries(kinds))}`);
    });
  }

  test("afterwards the server is healthy and each endpoint still serves a valid request", async () => {
    const health = await app.inject({ method: "GET", url: "/healthz" });
    assert.deepEqual([health.statusCode, health.json()], [200, { status: "ok" }]);
    assert.equal(images.calls.length, 0, "no malformed request reached generate");
    for (const e of ENDPOINTS) {
      const res = await app.inject({ method: "POST", url: e.url, headers: { ...e.auth, ...JSON_TYPE }, payload: JSON.stringify(e.valid) });
      assert.equal(res.statusCode, 200, `${e.url}: ${res.body.slice(0, 300)}`);
    }
    assert.equal(images.charges.length, ENDPOINTS.length);
  });
});

/** The upstream transport: connect and total timeouts, the caller's abort, refused connections, size limits. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Response } from "undici";
import { UpstreamError } from "./errors.ts";
import { createUpstreamHttp, type FetchLike, readBytes } from "./http.ts";

const GET = { method: "GET" as const, headers: {} };
const read = async (res: Response) => res.status;

function waitsForAbort(): FetchLike {
  return (_url, init) =>
    new Promise((_resolve, reject) => {
      const signal = init.signal as AbortSignal;
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
}

test("a connection not accepted within connectMs is a retryable connection failure that names the limit", async () => {
  const fetch: FetchLike = async () => {
    throw new TypeError("fetch failed", { cause: Object.assign(new Error("Connect Timeout Error"), { code: "UND_ERR_CONNECT_TIMEOUT" }) });
  };
  const http = createUpstreamHttp({ provider: "p", connectTimeoutMs: 50, totalTimeoutMs: 1000, fetch });
  await assert.rejects(http.exchange("http://127.0.0.1:1/x", GET, new AbortController().signal, read), (e: unknown) => {
    assert.ok(e instanceof UpstreamError);
    assert.equal(e.kind, "connection");
    assert.ok(e.retryable);
    assert.match(e.message, /provider "p" did not accept a connection within 50 ms/);
    return true;
  });
  await http.close();
});

test("no answer within totalMs is a timeout; the caller's own abort stays the caller's", async () => {
  const http = createUpstreamHttp({ provider: "p", connectTimeoutMs: 50, totalTimeoutMs: 60, fetch: waitsForAbort() });
  await assert.rejects(http.exchange("http://x/", GET, new AbortController().signal, read), (e: unknown) => e instanceof UpstreamError && e.kind === "timeout" && /within 60 ms/.test(e.message));
  const c = new AbortController();
  const p = http.exchange("http://x/", GET, c.signal, read);
  c.abort(new Error("client went away"));
  await assert.rejects(p, /client went away/);
  await http.close();
});

test("a refused connection (nothing listening on the port) is a connection failure without the address in its message", async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  const http = createUpstreamHttp({ provider: "p", connectTimeoutMs: 1000, totalTimeoutMs: 2000 });
  await assert.rejects(http.exchange(`http://127.0.0.1:${port}/`, GET, new AbortController().signal, read), (e: unknown) => {
    assert.ok(e instanceof UpstreamError && e.kind === "connection");
    assert.match(e.message, /could not be reached \(ECONNREFUSED\)/);
    assert.ok(!e.message.includes(String(port)), "no upstream address in a message a client may read");
    return true;
  });
  await http.close();
});

test("an answer larger than the limit is a bad response", async () => {
  const res = new Response(new Uint8Array(100));
  await assert.rejects(readBytes(res, "p", 10), (e: unknown) => e instanceof UpstreamError && e.kind === "bad_response");
  assert.equal((await readBytes(new Response(new Uint8Array(10)), "p", 10)).length, 10);
});

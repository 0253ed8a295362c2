/**
 * Slow and idle clients over real sockets on loopback: a body or headers that trickle in are cut off at the
 * configured timeouts (with a 408 in the dialect's shape), a client refused for its key is disconnected, idle
 * keep-alive connections are closed, and connections past the cap are closed at once. A generation that takes
 * longer than the request timeout is not cut: the timeout covers receiving the request only.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { makeApp } from "./helpers.ts";
import { assertErrorShape } from "./shapes.ts";

interface Conn {
  socket: Socket;
  /** Resolves with everything received and the milliseconds from connecting to the close. */
  closed: Promise<{ data: string; ms: number }>;
  /** Writes `s` one byte every `everyMs` until the socket closes. */
  trickle(s: string, everyMs: number): void;
}

function open(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const t0 = Date.now();
    let data = "";
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding("latin1");
    socket.on("data", (d) => (data += d));
    socket.on("error", () => {});
    const closed = new Promise<{ data: string; ms: number }>((r) =>
      socket.on("close", () => {
        clearInterval(timer);
        r({ data, ms: Date.now() - t0 });
      }),
    );
    const trickle = (s: string, everyMs: number) => {
      let i = 0;
      timer = setInterval(() => {
        if (!socket.destroyed && i < s.length) socket.write(s[i++]);
      }, everyMs);
    };
    socket.once("connect", () => resolve({ socket, closed, trickle }));
    socket.once("error", reject);
  });
}

/** Splits a raw HTTP/1.1 response into the parts assertErrorShape reads. */
function parse(raw: string): { statusCode: number; headers: Record<string, string>; body: string } {
  const [head, ...rest] = raw.split("\r\n\r\n");
  const [status, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { statusCode: Number(status.split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: "127.0.0.1", port: 0 });
  return (app.server.address() as { port: number }).port;
}

const post = (path: string, headers: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${headers}\r\n`;

describe("slow clients", { timeout: 30_000 }, async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let slowGeneration = false;
  const { app, images } = await makeApp(
    { gate: () => (slowGeneration ? gate : Promise.resolve()) },
    { server: { requestTimeoutMs: 400, headersTimeoutMs: 200, keepAliveTimeoutMs: 200, maxConnections: 50 } },
  );
  const port = await listen(app);
  after(() => app.close());

  test("a body sent a byte at a time is cut off at the request timeout with a 408 in the dialect's shape", async () => {
    const c = await open(port);
    c.socket.write(post("/v1/images/generations", "Authorization: Bearer sk-test\r\n", 100));
    c.trickle('{"prompt": "a lighthouse at dusk", "size": "64x64"}'.padEnd(100), 50);
    const { data, ms } = await c.closed;
    assert.ok(ms < 1500, `closed after ${ms} ms`);
    const res = parse(data);
    assert.equal(res.statusCode, 408);
    assert.equal(assertErrorShape("openai", res, "slow body"), "E_REQUEST_TIMEOUT");
    assert.equal(res.headers.connection, "close");
    assert.equal(images.calls.length, 0);
  });

  test("Segmind's 408 carries x-remaining-credits", async () => {
    const c = await open(port);
    c.socket.write(post("/v1/playground-v2.5", "x-api-key: sk-test\r\n", 100));
    c.trickle("{".padEnd(100), 50);
    const res = parse((await c.closed).data);
    assert.equal(assertErrorShape("segmind", res, "slow segmind body"), "E_REQUEST_TIMEOUT");
    assert.equal(res.headers["x-remaining-credits"], "100");
  });

  test("headers sent a byte at a time are cut off at the headers timeout", async () => {
    const c = await open(port);
    c.trickle("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 20);
    const { data, ms } = await c.closed;
    assert.ok(ms < 1000, `closed after ${ms} ms`);
    assert.equal(parse(data).statusCode, 408);
  });

  test("a connection that sends nothing is closed at the headers timeout", async () => {
    const { data, ms } = await (await open(port)).closed;
    assert.ok(ms < 1000, `closed after ${ms} ms`);
    assertErrorShape("native", parse(data), "silent connection");
  });

  test("after a 401 the connection is closed, though the client is still sending its body", async () => {
    for (const [path, auth] of [
      ["/v1/images/generations", ""],
      ["/v1/images/generations", "Authorization: Bearer wrong\r\n"],
      ["/v1/playground-v2.5", "x-api-key: wrong\r\n"],
    ]) {
      const c = await open(port);
      c.socket.write(post(path, auth, 10_000));
      c.trickle("x".repeat(10_000), 20);
      const { data, ms } = await c.closed;
      assert.ok(ms < 300, `${path} ${auth.trim()}: closed after ${ms} ms, before any timeout`);
      const res = parse(data);
      assert.equal(res.statusCode, 401, path);
      assert.equal(res.headers.connection, "close");
    }
  });

  test("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const c = await open(port);
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const { data, ms } = await c.closed;
    assert.match(data, /^HTTP\/1\.1 200/);
    // Node keeps the socket open for keepAliveTimeout plus its keepAliveTimeoutBuffer (1 s) against races.
    assert.ok(ms >= 150 && ms < 1800, `closed after ${ms} ms`);
  });

  test("a generation that outlasts the request timeout is not cut", async () => {
    slowGeneration = true;
    const c = await open(port);
    const body = JSON.stringify({ prompt: "x", size: "64x64", response_format: "b64_json" });
    c.socket.write(`${post("/v1/images/generations", "Authorization: Bearer sk-test\r\nConnection: close\r\n", body.length)}${body}`);
    setTimeout(release, 900);
    const { data, ms } = await c.closed;
    slowGeneration = false;
    assert.ok(ms >= 900, `answered after ${ms} ms`);
    assert.equal(parse(data).statusCode, 200);
  });
});

describe("connection cap", { timeout: 10_000 }, async () => {
  const { app } = await makeApp({}, { server: { maxConnections: 3, headersTimeoutMs: 5000, requestTimeoutMs: 5000 } });
  const port = await listen(app);
  after(() => app.close());

  test("connections past server.maxConnections are closed at once; a freed slot is usable again", async () => {
    const held = await Promise.all([open(port), open(port), open(port)]);
    const extra = await open(port);
    const { data, ms } = await extra.closed;
    assert.equal(data, "");
    assert.ok(ms < 500, `closed after ${ms} ms`);
    held[0].socket.destroy();
    await held[0].closed;
    await new Promise((r) => setTimeout(r, 50));
    const again = await open(port);
    again.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match((await again.closed).data, /^HTTP\/1\.1 200/);
    for (const h of held.slice(1)) h.socket.destroy();
  });
});

describe("requests the HTTP parser rejects", { timeout: 10_000 }, async () => {
  const { app } = await makeApp();
  const port = await listen(app);
  after(() => app.close());

  const send = async (raw: string) => {
    const c = await open(port);
    c.socket.write(raw);
    return parse((await c.closed).data);
  };

  test("headers too large: 431 in the shape of the dialect the path belongs to", async () => {
    const big = `X-Big: ${"a".repeat(20_000)}\r\n`;
    const openai = await send(`POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n${big}\r\n`);
    assert.equal(openai.statusCode, 431);
    assert.equal(assertErrorShape("openai", openai, "431 openai"), "E_HEADERS_TOO_LARGE");
    const segmind = await send(`POST /v1/playground-v2.5 HTTP/1.1\r\nHost: x\r\nx-api-key: sk-test\r\n${big}\r\n`);
    assert.equal(assertErrorShape("segmind", segmind, "431 segmind"), "E_HEADERS_TOO_LARGE");
    const native = await send(`GET /nowhere HTTP/1.1\r\nHost: x\r\n${big}\r\n`);
    assert.equal(assertErrorShape("native", native, "431 native"), "E_HEADERS_TOO_LARGE");
  });

  test("a malformed request is 400 in a documented shape", async () => {
    for (const raw of [
      "POST /api/models/external/v1 HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
      "GARBAGE\r\n\r\n",
      "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]) {
      const res = await send(raw);
      assert.equal(res.statusCode, 400, JSON.stringify(raw));
      assertErrorShape(raw.startsWith("POST /api/models") ? "playground" : raw.startsWith("POST /v1/") ? "openai" : "native", res, JSON.stringify(raw));
    }
  });
});

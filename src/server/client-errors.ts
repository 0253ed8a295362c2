/**
 * Answers for requests that fail before Fastify routes them: the HTTP parser's rejections (headers too large, a
 * malformed request line or header) and request timeouts (headers or body too slow). Node would write a bare
 * status line and Fastify its own JSON; here they get the error body and headers of the dialect whose path they
 * asked for, like every other error, and the connection is closed.
 */
import type { IncomingHttpHeaders } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { EaselError } from "../core/errors.ts";
import type { RequestHead } from "../dialects/_shared/dialect.ts";

/** A rendered error: status, body (undefined = empty) and headers. */
export interface ShapedError {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** The error behind a connection-level failure; undefined when there is nobody to answer (the client left). */
export function clientConnectionError(code: string | undefined, limits: { maxHeaderBytes: number }): EaselError | undefined {
  if (code === "ECONNRESET" || code === "EPIPE") return undefined;
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return new EaselError("E_REQUEST_TIMEOUT", "The request was not received in time; the connection is closed.");
  }
  if (code === "HPE_HEADER_OVERFLOW") {
    return new EaselError(
      "E_HEADERS_TOO_LARGE",
      `The request headers are larger than this server accepts (${limits.maxHeaderBytes} bytes).`,
    );
  }
  return new EaselError("E_INPUT_INVALID", "The request is not valid HTTP/1.1.", { details: { reason: "invalid_value" } });
}

/**
 * The request line and headers in the bytes the parser had read when it gave up, so the answer can take the
 * shape of the dialect the client was talking to. Undefined when the request line itself is not there.
 */
export function parseRequestHead(raw: unknown): RequestHead | undefined {
  if (!Buffer.isBuffer(raw)) return undefined;
  const lines = raw.subarray(0, 64 * 1024).toString("latin1").split("\r\n");
  const m = /^([A-Z]{1,20}) (\/\S{0,8191}) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!m) return undefined;
  const headers: IncomingHttpHeaders = {};
  for (const line of lines.slice(1)) {
    if (line === "") break;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!(name in headers)) headers[name] = line.slice(colon + 1).trim();
  }
  return { method: m[1], url: m[2], headers };
}

/** Writes a complete response straight to the socket, then closes it once the bytes are out. */
export function writeAndClose(socket: Socket, e: ShapedError): void {
  const body = e.body === undefined ? "" : JSON.stringify(e.body);
  const headers: Record<string, string> = {
    ...e.headers,
    ...(body ? { "content-type": "application/json; charset=utf-8" } : {}),
    "content-length": String(Buffer.byteLength(body)),
    connection: "close",
  };
  const head = [`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? "Error"}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`, () => socket.destroy());
}

/**
 * The HTTP side of one configured provider: an undici connection pool with the provider's connect timeout (a host
 * that does not accept the connection in time fails fast instead of waiting for the total deadline), and every
 * exchange — request, headers and body read — bounded by the provider's total timeout. Errors come out classified
 * (UpstreamError) with messages that never carry the provider's URL or key, since they may reach clients.
 */
import { Agent, type Dispatcher, fetch as undiciFetch, type RequestInit, type Response } from "undici";
import { UpstreamError } from "./errors.ts";

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** The most bytes read from one upstream answer (an image response, a JSON body of base64 images, an error). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface UpstreamHttpOptions {
  /** Names the provider in messages. */
  provider: string;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  /** Default: undici's fetch over this provider's own pool. */
  fetch?: FetchLike;
}

export interface ExchangeInit {
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
}

export interface UpstreamHttp {
  /**
   * Makes one request and hands the response to `read` (which reads the body); the whole exchange is bounded by the
   * total timeout. Rejects with the caller's abort reason when `signal` aborts, else with an UpstreamError.
   */
  exchange<T>(url: string, init: ExchangeInit, signal: AbortSignal, read: (res: Response, signal: AbortSignal) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const CONNECT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
const DROP_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

function errorCode(e: unknown): string | undefined {
  for (let x: unknown = e, depth = 0; x && depth < 4; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** A network failure as an UpstreamError with a message fit for a client. */
function networkError(provider: string, e: unknown, connectTimeoutMs: number): UpstreamError {
  const code = errorCode(e);
  if (code === "UND_ERR_CONNECT_TIMEOUT") {
    return new UpstreamError("connection", `provider "${provider}" did not accept a connection within ${connectTimeoutMs} ms`, { cause: e });
  }
  if (code && CONNECT_CODES.has(code)) return new UpstreamError("connection", `provider "${provider}" could not be reached (${code})`, { cause: e });
  if (code && DROP_CODES.has(code)) return new UpstreamError("connection", `provider "${provider}" closed the connection before answering`, { cause: e });
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return new UpstreamError("timeout", `provider "${provider}" stopped answering`, { cause: e });
  }
  return new UpstreamError("connection", `the request to provider "${provider}" failed${code ? ` (${code})` : ""}`, { cause: e });
}

export function createUpstreamHttp(o: UpstreamHttpOptions): UpstreamHttp {
  const agent: Dispatcher = new Agent({
    connect: { timeout: o.connectTimeoutMs },
    headersTimeout: o.totalTimeoutMs,
    bodyTimeout: o.totalTimeoutMs,
  });
  const doFetch: FetchLike = o.fetch ?? ((url, init) => undiciFetch(url, init));
  return {
    async exchange(url, init, signal, read) {
      signal.throwIfAborted();
      // A timer of its own rather than AbortSignal.timeout, whose unref'd timer would not keep a process waiting.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(new DOMException("deadline", "TimeoutError")), o.totalTimeoutMs);
      const both = AbortSignal.any([signal, deadline.signal]);
      try {
        const res = await doFetch(url, { ...init, signal: both, dispatcher: agent });
        try {
          return await read(res, both);
        } finally {
          // An unread body keeps the connection busy; a read one makes this a no-op.
          await res.body?.cancel().catch(() => undefined);
        }
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (deadline.signal.aborted) {
          throw new UpstreamError("timeout", `provider "${o.provider}" did not answer within ${o.totalTimeoutMs} ms`, { cause: e });
        }
        if (e instanceof UpstreamError) throw e;
        throw networkError(o.provider, e, o.connectTimeoutMs);
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => agent.close(),
  };
}

/** The body as bytes, at most MAX_RESPONSE_BYTES (a larger answer is the upstream misbehaving). */
export async function readBytes(res: Response, provider: string, max = MAX_RESPONSE_BYTES): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length"));
  if (declared > max) throw new UpstreamError("bad_response", `provider "${provider}" answered more than ${max} bytes`, { status: res.status });
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += chunk.byteLength;
    if (total > max) throw new UpstreamError("bad_response", `provider "${provider}" answered more than ${max} bytes`, { status: res.status });
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}

export async function readText(res: Response, provider: string): Promise<string> {
  return Buffer.from(await readBytes(res, provider)).toString("utf8");
}

/** Parses a JSON answer, or fails as a bad response naming the provider. */
export function parseJson(text: string, provider: string, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UpstreamError("bad_response", `provider "${provider}" answered ${status} with a body that is not JSON`, { status });
  }
}

/** HTTP plumbing every dialect uses the same way: API keys, the request context, image URLs, Easel headers. */
import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import type { Config } from "../../config/index.ts";
import { EaselError } from "../../core/errors.ts";
import type { ImageService, Principal, RequestContext } from "../../core/image-service.ts";
import type { GenerationEvent, GenerationResult, Warning } from "../../core/types.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the dialect's authentication hook, before the body is read. */
    easelPrincipal?: Principal;
  }
}

/** The parts of a request that key lookups read (also available for requests the HTTP parser rejected). */
export interface HeadersOnly {
  headers: IncomingHttpHeaders;
}

/**
 * The token of `Authorization: Bearer <token>`. A header in another form (a bare key, `Basic ...`) is refused:
 * accepting a key without its scheme would make the scheme optional.
 */
export function bearerKey(req: HeadersOnly): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined || h === "") return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  if (!m) {
    throw new EaselError("E_AUTH_INVALID", "The Authorization header must be 'Bearer <API key>'.", {
      details: { reason: "authorization_scheme" },
    });
  }
  return m[1];
}

export function headerKey(name: string): (req: HeadersOnly) => string | undefined {
  return (req) => {
    const v = req.headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined || s === "" ? undefined : s;
  };
}

/** onRequest hook: authenticate before the body is even parsed, so a bad key never costs a body read. */
export function authHook(images: ImageService, key: (req: HeadersOnly) => string | undefined): onRequestAsyncHookHandler {
  return async (req) => {
    req.easelPrincipal = await images.authenticate(key(req));
  };
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.easelPrincipal) throw new EaselError("E_INTERNAL", "request reached a handler without authentication");
  return req.easelPrincipal;
}

/** Whether a `Prefer` header (RFC 7240: comma-separated preferences, each `token[=value][; params]`) asks for respond-async. */
export function prefersAsync(req: HeadersOnly): boolean {
  const h = req.headers.prefer;
  const values = Array.isArray(h) ? h : h === undefined ? [] : [h];
  return values.some((v) => v.split(",").some((p) => p.split(/[=;]/)[0].trim().toLowerCase() === "respond-async"));
}

/**
 * The RequestContext of one request; its signal aborts when the client goes away before the answer is sent. With
 * `Prefer: respond-async` the job does not wait for the caller (generate answers JobAccepted: a 202).
 */
export function requestContext(
  req: FastifyRequest,
  reply: FastifyReply,
  opts: { dialect: string; delivery: "url" | "bytes"; onEvent?: (e: GenerationEvent) => void },
): RequestContext {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  const idem = req.headers["idempotency-key"];
  const idempotencyKey = Array.isArray(idem) ? idem[0] : idem;
  return {
    dialect: opts.dialect,
    principal: principalOf(req),
    idempotencyKey: idempotencyKey || undefined,
    signal: controller.signal,
    onEvent: opts.onEvent,
    delivery: opts.delivery,
    ...(prefersAsync(req) ? { respondAsync: true } : {}),
  };
}

/** A host name, IPv4 or bracketed IPv6 address, with an optional port: nothing that could change a URL's path. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The entry the nearest proxy added: the last of a repeated or comma-separated forwarding header. */
function nearestProxyValue(v: string | string[] | undefined): string | undefined {
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  return last?.split(",").at(-1)?.trim() || undefined;
}

/**
 * Base of the image URLs handed out: the configured public URL; else, when the operator trusts a proxy, the
 * proxy's X-Forwarded-Proto and X-Forwarded-Host; else the address and port the client connected to. Never the
 * client's Host header: a client could otherwise make the server hand out links to another host.
 */
export function publicBaseUrl(config: Config, req: FastifyRequest): string {
  const configured = config.server.publicBaseUrl;
  if (configured) return configured.replace(/\/+$/, "");
  if (config.server.trustProxy) {
    const host = nearestProxyValue(req.headers["x-forwarded-host"]);
    const proto = nearestProxyValue(req.headers["x-forwarded-proto"])?.toLowerCase() ?? "http";
    if (host && HOST_RE.test(host) && (proto === "http" || proto === "https")) return `${proto}://${host}`;
  }
  const socket = req.raw.socket as Partial<Socket> | undefined;
  const address = socket?.localAddress || config.server.host;
  const port = socket?.localPort || config.server.port;
  return `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
}

/** Absolute URL of a stored image; a result without one means the service did not store it, which is a bug. */
export function imageUrl(base: string, url: string | undefined): string {
  if (!url) throw new EaselError("E_INTERNAL", "the image was not stored, so it has no URL");
  return /^https?:\/\//.test(url) ? url : `${base}${url.startsWith("/") ? "" : "/"}${url}`;
}

/** JSON with every non-ASCII character escaped, so it is a legal header value. */
function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Easel's own headers on a successful generation: the seed (to reproduce), the job, credits, warnings. */
export function resultHeaders(result: GenerationResult, extraWarnings: Warning[] = []): Record<string, string> {
  const h: Record<string, string> = {
    "x-easel-job-id": result.jobId,
    "x-easel-seed": String(result.seed),
    "x-easel-seeds": result.images.map((i) => i.seed).join(","),
  };
  if (result.creditsCharged !== undefined) h["x-easel-credits-charged"] = String(result.creditsCharged);
  const warnings = [...extraWarnings, ...result.warnings];
  if (warnings.length > 0) h["x-easel-warnings"] = asciiJson(warnings);
  return h;
}

/** Headers for a stream that starts before the result exists. */
export function warningsHeader(warnings: Warning[]): Record<string, string> {
  return warnings.length > 0 ? { "x-easel-warnings": asciiJson(warnings) } : {};
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Other methods on a known path: 405 in the dialect's shape (the server's error handler renders it). */
export function methodNotAllowed(app: FastifyInstance, url: string, allowed: string): void {
  app.route({
    // OPTIONS too: with CORS configured, the CORS hook answers preflights before this handler runs.
    method: ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => m !== allowed),
    url,
    schema: { hide: true },
    handler: async (req, reply) => {
      reply.header("allow", allowed);
      throw new EaselError("E_METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed on ${url}; use ${allowed}.`);
    },
  });
}

/** HTTP plumbing every dialect uses the same way: API keys, the request context, image URLs, Easel headers. */
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

/** The token of `Authorization: Bearer <token>`; a header in another form is passed on whole (and fails). */
export function bearerKey(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h === undefined || h === "") return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m ? m[1].trim() : h;
}

export function headerKey(name: string): (req: FastifyRequest) => string | undefined {
  return (req) => {
    const v = req.headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined || s === "" ? undefined : s;
  };
}

/** onRequest hook: authenticate before the body is even parsed, so a bad key never costs a body read. */
export function authHook(images: ImageService, key: (req: FastifyRequest) => string | undefined): onRequestAsyncHookHandler {
  return async (req) => {
    req.easelPrincipal = await images.authenticate(key(req));
  };
}

export function principalOf(req: FastifyRequest): Principal {
  if (!req.easelPrincipal) throw new EaselError("E_INTERNAL", "request reached a handler without authentication");
  return req.easelPrincipal;
}

/** The RequestContext of one request; its signal aborts when the client goes away before the answer is sent. */
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
  };
}

/** Base of the image URLs handed out: the configured public URL, else the scheme and Host the client used. */
export function publicBaseUrl(config: Config, req: FastifyRequest): string {
  const configured = config.server.publicBaseUrl;
  if (configured) return configured.replace(/\/+$/, "");
  return `${req.protocol}://${req.host}`;
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
    method: ["GET", "PUT", "PATCH", "DELETE"].filter((m) => m !== allowed),
    url,
    schema: { hide: true },
    handler: async (req, reply) => {
      reply.header("allow", allowed);
      throw new EaselError("E_METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed on ${url}; use ${allowed}.`);
    },
  });
}

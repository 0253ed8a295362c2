/**
 * Composition root of the HTTP surface (Fastify 5): every dialect in its own encapsulated scope with its own
 * error shape, the OpenAPI document and offline API reference (`/docs`), `/healthz`, signed image files
 * (`/v1/files/:token`), the web playground (`/`), and the admin routes when that module is present.
 */
import type { ServerResponse } from "node:http";
import { maxHeaderSize } from "node:http";
import type { Socket } from "node:net";
import cors from "@fastify/cors";
import swagger, { type SwaggerTransformObject } from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { Config } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import { type ImageService, JobAccepted } from "../core/image-service.ts";
import type { Dialect, DialectDeps, RequestHead } from "../dialects/_shared/dialect.ts";
import { DIALECTS } from "../dialects/index.ts";
import type { KeyAdmin } from "../jobs/api-keys.ts";
import { createPromptExpander, createPromptService, type PromptService } from "../prompts/index.ts";
import { sendAccepted } from "./accepted.ts";
import { adminRoutes } from "./admin-routes.ts";
import { clientConnectionError, parseRequestHead, type ShapedError, writeAndClose } from "./client-errors.ts";
import { boundaryError } from "./error-boundary.ts";
import { webRoutes } from "./web.ts";
import type { PullResult } from "../hub/pull.ts";

export interface CreateAppOptions {
  config: Config;
  images: ImageService;
  /** Fastify logger option (false = silent, the default for tests). */
  logger?: FastifyServerOptions["logger"];
  /** Dialects to serve; default: all of dialects/index.ts. */
  dialects?: readonly Dialect[];
  /** Key administration behind `/admin/...` (served only when this is given and server.adminKey is set). */
  keys?: KeyAdmin;
  /** Registers a model pulled through `/admin/models/pull` in the running server. */
  onModelPulled?: (result: PullResult) => Promise<void>;
  /** Style presets and prompt checks (default: made from config, closed with the app). */
  prompts?: PromptService;
  /** Serve the web playground at `/` (default true). */
  web?: boolean;
}

/** Headers a browser may read on a cross-origin answer (CORS): Easel's own and the dialects'. */
const EXPOSED_HEADERS = [
  "x-easel-seed",
  "x-easel-seeds",
  "x-easel-job-id",
  "x-easel-credits-charged",
  "x-easel-warnings",
  "x-easel-revised-prompt",
  "x-easel-style",
  "x-easel-error-code",
  "x-remaining-credits",
  "retry-after",
];

/** Headers of an in-process answer that belong to that exchange only, not to the answer forwarded from it. */
const EXCHANGE_HEADERS = new Set(["content-length", "connection", "keep-alive", "transfer-encoding", "date"]);

/** `GET /v1/files/<token>`, whether or not the token routes (malformed, too long, empty). */
function isFileRequest(req: { method: string; url: string }): boolean {
  return (req.method === "GET" || req.method === "HEAD") && /^\/v1\/files\/[^/?]*(\?|$)/.test(req.url);
}

/** Easel's own error body, for paths that belong to no dialect. */
function nativeError(e: EaselError): ShapedError {
  return {
    status: e.status,
    body: { error: { code: e.code, message: e.message, param: e.param ?? null } },
    headers: { "x-easel-error-code": e.code },
  };
}

/** `GET /v1/files/:token` answers every bad token with a bare 404 (nothing to tell a guesser). */
function fileNotFound(): ShapedError {
  return { status: 404, body: undefined, headers: { "x-easel-error-code": "E_NOT_FOUND" } };
}

/** The error rendered by dialect `d` (or Easel's own shape), with the dialect's headers on every response. */
async function shapeError(d: Dialect | undefined, deps: DialectDeps, e: EaselError, req: RequestHead): Promise<ShapedError> {
  if (!d) return nativeError(e);
  const shaped = d.errorReply(e);
  const common = d.commonHeaders ? await d.commonHeaders(req, deps).catch(() => ({})) : {};
  return { status: shaped.status, body: shaped.body, headers: { ...common, ...shaped.headers } };
}

/**
 * Sends a shaped error. The connection is closed after an authentication failure, and whenever the request body
 * was not read to its end: a client that may not use the server gets no further time on the connection.
 */
function sendShaped(e: EaselError, shaped: ShapedError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const closes = e.code === "E_AUTH_MISSING" || e.code === "E_AUTH_INVALID" || req.raw.complete === false;
  reply.code(shaped.status).headers({ ...shaped.headers, ...(closes ? { connection: "close" } : {}) });
  return shaped.body === undefined ? reply.send() : reply.send(shaped.body);
}

async function sendDialectError(
  d: Dialect | undefined,
  deps: DialectDeps,
  err: unknown,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  if (err instanceof JobAccepted) return sendAccepted(err, deps.config, req, reply);
  const e = boundaryError(err, req.body);
  if (e.status >= 500) req.log.error({ err, code: e.code }, "request failed");
  return sendShaped(e, await shapeError(d, deps, e, req), req, reply);
}

/** The dialect that answers an unmatched request: one that claims it, else the longest matching prefix. */
function dialectFor(dialects: readonly Dialect[], req: RequestHead): Dialect | undefined {
  const path = req.url.split("?")[0];
  const matching = dialects.filter((d) => d.prefixes.some((p) => path.startsWith(p)));
  const claimed = matching.find((d) => d.claims?.(req));
  if (claimed) return claimed;
  const len = (d: Dialect) => Math.max(...d.prefixes.filter((p) => path.startsWith(p)).map((p) => p.length));
  return matching.sort((a, b) => len(b) - len(a))[0];
}

export async function createApp(opts: CreateAppOptions): Promise<FastifyInstance> {
  const { config, images } = opts;
  const server = config.server;
  const dialects = opts.dialects ?? DIALECTS;
  const prompts = opts.prompts ?? createPromptService({ config, expander: createPromptExpander(config) });
  const deps: DialectDeps = { config, images, prompts };
  /** The request each connection is serving, so a timeout mid-body is answered in that request's dialect. */
  const inFlight = new WeakMap<Socket, { req: FastifyRequest; res: ServerResponse }>();

  /** Errors of requests no route took (unknown path, malformed path): the dialect of the path, or Easel's own. */
  const sendUnrouted = async (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const e = boundaryError(err, req.body);
    if (isFileRequest(req)) return sendShaped(e, fileNotFound(), req, reply);
    return sendShaped(e, await shapeError(dialectFor(dialects, req), deps, e, req), req, reply);
  };

  const app = Fastify({
    logger: opts.logger ?? false,
    // Routes that take an uploaded image raise their own limit (server.imageBodyLimitBytes).
    bodyLimit: server.jsonBodyLimitBytes,
    trustProxy: server.trustProxy,
    requestTimeout: server.requestTimeoutMs,
    keepAliveTimeout: server.keepAliveTimeoutMs,
    http: {
      requestTimeout: server.requestTimeoutMs,
      headersTimeout: server.headersTimeoutMs,
      // How often Node looks for requests past their timeouts (its default, 30 s, would stretch every timeout).
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(server.headersTimeoutMs / 4))),
    },
    // Signed image tokens are ~130 characters: above find-my-way's default 100-character parameter limit.
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: (err, req, reply) => {
      void sendUnrouted(err, req, reply);
    },
    clientErrorHandler: (err, socket) => {
      if (socket.destroyed) return;
      const e = clientConnectionError(err.code, { maxHeaderBytes: maxHeaderSize });
      const current = inFlight.get(socket);
      if (!e || current?.res.headersSent) {
        socket.destroy();
        return;
      }
      const head = current?.req ?? parseRequestHead((err as { rawPacket?: unknown }).rawPacket);
      const shaped =
        head && isFileRequest(head)
          ? Promise.resolve(fileNotFound())
          : shapeError(head && dialectFor(dialects, head), deps, e, head ?? { method: "", url: "", headers: {} });
      shaped.then(
        (s) => (socket.destroyed ? undefined : writeAndClose(socket, head?.method === "HEAD" ? { ...s, body: undefined } : s)),
        () => socket.destroy(),
      );
    },
  });
  app.server.maxConnections = server.maxConnections;
  if (!opts.prompts) app.addHook("onClose", async () => prompts.close());
  // POST /v1/jobs runs a dialect's body through that dialect's own route, in-process (Fastify's inject), so the
  // body is validated and translated exactly as on that route, errors included.
  const submittable = dialects.filter((d) => d.submitPath !== undefined);
  deps.submitAsync = {
    dialects: submittable.map((d) => d.id),
    async forward(id, body, headers) {
      const target = submittable.find((d) => d.id === id);
      if (!target?.submitPath) throw new EaselError("E_INTERNAL", `dialect ${id} has no generation route to submit to`);
      const res = await app.inject({
        method: "POST",
        url: target.submitPath,
        headers: { ...headers, "content-type": "application/json", prefer: "respond-async" },
        payload: JSON.stringify(body),
      });
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined && !EXCHANGE_HEADERS.has(k.toLowerCase())) out[k] = Array.isArray(v) ? v.join(", ") : String(v);
      }
      return { status: res.statusCode, headers: out, body: res.body };
    },
  };
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest("easelPrincipal", undefined);
  app.addHook("onRequest", async (req, reply) => {
    inFlight.set(req.raw.socket, { req, res: reply.raw });
  });
  app.addHook("onResponse", async (req) => {
    if (inFlight.get(req.raw.socket)?.req === req) inFlight.delete(req.raw.socket);
  });

  app.setErrorHandler(async (err, req, reply) => {
    const e = boundaryError(err, req.body);
    if (e.status >= 500) req.log.error({ err, code: e.code }, "request failed");
    return sendShaped(e, nativeError(e), req, reply);
  });

  if (server.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: server.corsOrigins.includes("*") ? "*" : server.corsOrigins,
      methods: ["GET", "HEAD", "POST"],
      exposedHeaders: EXPOSED_HEADERS,
      // An OPTIONS request without the preflight headers is answered like a preflight, never a plain-text 400.
      strictPreflight: false,
      maxAge: 600,
    });
  } else {
    // Without CORS, OPTIONS is a method like any other: 405 where the path exists (its dialect's 405 route, or
    // this one), 404 where it does not.
    app.options("*", { schema: { hide: true } }, async (req, reply) => {
      const path = req.url.split("?")[0];
      const allowed = ["GET", "POST"].filter((method) => app.findRoute({ method, url: path }) !== null);
      if (allowed.length === 0) return reply.callNotFound();
      const allow = allowed.flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m])).join(", ");
      reply.header("allow", allow);
      const e = new EaselError("E_METHOD_NOT_ALLOWED", `Method OPTIONS is not allowed on ${path}; use ${allow}.`);
      return sendUnrouted(e, req, reply);
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Easel",
        version: "0.1.0",
        description:
          "Self-hosted image generation speaking the OpenAI, Monica, Playground and Segmind image APIs. " +
          "Each dialect answers errors in its own provider's shape.",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer" },
          apiKey: { type: "apiKey", in: "header", name: "x-api-key" },
          basic: { type: "http", scheme: "basic" },
        },
      },
    },
    transform: jsonSchemaTransform,
    // The reference page is registered by @fastify/swagger-ui, whose routes the document leaves out: listed here.
    transformObject: (doc) => {
      const openapi = (doc as { openapiObject: { paths?: Record<string, unknown> } }).openapiObject;
      const docsPage = { tags: ["Server"], summary: "API reference (Swagger UI, works offline)", responses: { 200: { description: "An HTML page." } } };
      return { ...openapi, paths: { ...openapi.paths, "/docs": { get: docsPage } } } as ReturnType<SwaggerTransformObject>;
    },
  });
  // The UI's assets ship inside @fastify/swagger-ui, so the reference works without network access.
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get("/healthz", { schema: { tags: ["Server"], summary: "Liveness" } }, async () => ({ status: "ok" }));
  app.get("/openapi.json", { schema: { tags: ["Server"], summary: "This OpenAPI document" } }, async () => app.swagger());
  app.get(
    "/v1/files/:token",
    { schema: { tags: ["Server"], summary: "A generated image behind a signed, expiring URL" } },
    async (req, reply) => {
      const { token } = req.params as { token: string };
      const file = await images.openImage(token);
      if (!file) return reply.code(404).header("x-easel-error-code", "E_NOT_FOUND").send();
      // Caches may keep the image only as long as its URL works.
      const maxAge = Math.max(0, Math.floor((file.expiresAt - Date.now()) / 1000));
      return reply
        .header("content-type", file.mime)
        .header("cache-control", `private, max-age=${maxAge}`)
        .send(Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength));
    },
  );

  for (const d of dialects) {
    await app.register(async (scope) => {
      scope.setErrorHandler((err, req, reply) => sendDialectError(d, deps, err, req, reply));
      await d.register(scope, deps);
    });
  }
  if (opts.keys) await adminRoutes(app, { config, keys: opts.keys, onPulled: opts.onModelPulled });
  if (opts.web !== false) await webRoutes(app);

  app.setNotFoundHandler(async (req, reply) => {
    const e = new EaselError("E_NOT_FOUND", `Invalid URL (${req.method} ${req.url.split("?")[0]})`);
    return sendUnrouted(e, req, reply);
  });
  return app;
}

/**
 * Composition root of the HTTP surface (Fastify 5): every dialect in its own encapsulated scope with its own
 * error shape, the OpenAPI document and offline API reference (`/docs`), `/healthz`, signed image files
 * (`/v1/files/:token`), and the admin routes when that module is present.
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { Config } from "../config/index.ts";
import { EaselError } from "../core/errors.ts";
import type { ImageService } from "../core/image-service.ts";
import type { Dialect, DialectDeps } from "../dialects/_shared/dialect.ts";
import { DIALECTS } from "../dialects/index.ts";
import type { KeyAdmin } from "../jobs/api-keys.ts";
import { adminRoutes } from "./admin-routes.ts";
import { boundaryError } from "./error-boundary.ts";

export interface CreateAppOptions {
  config: Config;
  images: ImageService;
  /** Fastify logger option (false = silent, the default for tests). */
  logger?: FastifyServerOptions["logger"];
  /** Dialects to serve; default: all of dialects/index.ts. */
  dialects?: readonly Dialect[];
  /** Key administration behind `/admin/...` (served only when this is given and server.adminKey is set). */
  keys?: KeyAdmin;
}

/** Easel's own error body, for paths that belong to no dialect. */
function nativeError(e: EaselError): { status: number; body: unknown } {
  return { status: e.status, body: { error: { code: e.code, message: e.message, param: e.param ?? null } } };
}

async function sendDialectError(
  d: Dialect,
  deps: DialectDeps,
  err: unknown,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const e = boundaryError(err, req.body);
  if (e.status >= 500) req.log.error({ err, code: e.code }, "request failed");
  const shaped = d.errorReply(e);
  const common = d.commonHeaders ? await d.commonHeaders(req, deps).catch(() => ({})) : {};
  reply.code(shaped.status).headers({ ...common, ...shaped.headers });
  return shaped.body === undefined ? reply.send() : reply.send(shaped.body);
}

/** The dialect that answers an unmatched request: one that claims it, else the longest matching prefix. */
function dialectFor(dialects: readonly Dialect[], req: FastifyRequest): Dialect | undefined {
  const path = req.url.split("?")[0];
  const matching = dialects.filter((d) => d.prefixes.some((p) => path.startsWith(p)));
  const claimed = matching.find((d) => d.claims?.(req));
  if (claimed) return claimed;
  const len = (d: Dialect) => Math.max(...d.prefixes.filter((p) => path.startsWith(p)).map((p) => p.length));
  return matching.sort((a, b) => len(b) - len(a))[0];
}

export async function createApp(opts: CreateAppOptions): Promise<FastifyInstance> {
  const { config, images } = opts;
  const dialects = opts.dialects ?? DIALECTS;
  const deps: DialectDeps = { config, images };
  // Signed image tokens are ~130 characters: above find-my-way's default 100-character parameter limit.
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: config.server.bodyLimitBytes, routerOptions: { maxParamLength: 1024 } });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest("easelPrincipal", undefined);

  app.setErrorHandler(async (err, req, reply) => {
    const e = boundaryError(err, req.body);
    if (e.status >= 500) req.log.error({ err, code: e.code }, "request failed");
    const { status, body } = nativeError(e);
    return reply.code(status).send(body);
  });

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
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  // The UI's assets ship inside @fastify/swagger-ui, so the reference works without network access.
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.get("/healthz", { schema: { tags: ["Server"], summary: "Liveness" } }, async () => ({ status: "ok" }));
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  app.get(
    "/v1/files/:token",
    { schema: { tags: ["Server"], summary: "A generated image behind a signed, expiring URL" } },
    async (req, reply) => {
      const { token } = req.params as { token: string };
      const file = await images.openImage(token);
      if (!file) return reply.code(404).send();
      return reply
        .header("content-type", file.mime)
        .header("cache-control", `private, max-age=${config.images.urlTtlSeconds}`)
        .send(Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength));
    },
  );

  for (const d of dialects) {
    await app.register(async (scope) => {
      scope.setErrorHandler((err, req, reply) => sendDialectError(d, deps, err, req, reply));
      await d.register(scope, deps);
    });
  }
  if (opts.keys) await adminRoutes(app, { config, keys: opts.keys });

  app.setNotFoundHandler(async (req, reply) => {
    const e = new EaselError("E_NOT_FOUND", `Invalid URL (${req.method} ${req.url.split("?")[0]})`);
    const d = dialectFor(dialects, req);
    if (d) return sendDialectError(d, deps, e, req, reply);
    const { status, body } = nativeError(e);
    return reply.code(status).send(body);
  });
  return app;
}

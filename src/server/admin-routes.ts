/**
 * Admin HTTP API for API keys, the same operations as `easel keys`:
 *   POST /admin/keys {name, credits?, rateLimitPerMinute?, maxConcurrent?} -> 201 {key, ...info} (secret shown once)
 *   GET  /admin/keys, GET /admin/keys/:id
 *   POST /admin/keys/:id/revoke
 *   POST /admin/keys/:id/credits {credits, note?}
 * Guarded by `Authorization: Bearer <server.adminKey>`; with no admin key configured the routes do not exist.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config/index.ts";
import { EaselError, invalidInput, toEaselError } from "../core/errors.ts";
import type { KeyAdmin } from "../jobs/api-keys.ts";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

function optionalNumber(body: Record<string, unknown>, field: string): number | null | undefined {
  const v = body[field];
  if (v === undefined || v === null) return v;
  if (typeof v !== "number") throw invalidInput(field, `${field} must be a number`);
  return v;
}

function bodyObject(req: FastifyRequest): Record<string, unknown> {
  const b = req.body ?? {};
  if (typeof b !== "object" || Array.isArray(b)) throw invalidInput("body", "the body must be a JSON object");
  return b as Record<string, unknown>;
}

export async function adminRoutes(app: FastifyInstance, deps: { config: Config; keys: KeyAdmin }): Promise<void> {
  const adminKey = deps.config.server.adminKey;
  if (!adminKey) return;
  const expected = digest(adminKey);

  const guard = (req: FastifyRequest) => {
    const h = req.headers.authorization;
    const m = typeof h === "string" ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m) throw new EaselError("E_AUTH_MISSING", "The admin API needs Authorization: Bearer <admin key>.");
    // Comparing digests keeps the comparison constant-time whatever the presented length.
    if (!timingSafeEqual(digest(m[1]), expected)) throw new EaselError("E_AUTH_INVALID", "Invalid admin key.");
  };

  const handle =
    (fn: (req: FastifyRequest<{ Params: { id: string } }>) => Promise<unknown>, okStatus = 200) =>
    async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      try {
        guard(req);
        const out = await fn(req);
        return reply.code(okStatus).send(out);
      } catch (e) {
        const err = toEaselError(e);
        // Easel's own error shape and header; a caller without the admin key gets no further time on the connection.
        if (err.code === "E_AUTH_MISSING" || err.code === "E_AUTH_INVALID") reply.header("connection", "close");
        return reply
          .code(err.status)
          .header("x-easel-error-code", err.code)
          .send({ error: { code: err.code, message: err.message, param: err.param ?? null } });
      }
    };

  app.post(
    "/admin/keys",
    handle(async (req) => {
      const b = bodyObject(req);
      if (typeof b.name !== "string") throw invalidInput("name", "name is required (a string of 1 to 100 characters)");
      const { key, info } = await deps.keys.create({
        name: b.name,
        credits: optionalNumber(b, "credits"),
        rateLimitPerMinute: optionalNumber(b, "rateLimitPerMinute"),
        maxConcurrent: optionalNumber(b, "maxConcurrent"),
      });
      return { key, ...info };
    }, 201),
  );
  app.get("/admin/keys", handle(async () => ({ data: await deps.keys.list() })));
  app.get("/admin/keys/:id", handle(async (req) => deps.keys.show(req.params.id)));
  app.post("/admin/keys/:id/revoke", handle(async (req) => deps.keys.revoke(req.params.id)));
  app.post(
    "/admin/keys/:id/credits",
    handle(async (req) => {
      const b = bodyObject(req);
      const credits = optionalNumber(b, "credits");
      if (credits === undefined || credits === null) throw invalidInput("credits", "credits is required (a number)");
      if (b.note !== undefined && typeof b.note !== "string") throw invalidInput("note", "note must be a string");
      return deps.keys.addCredits(req.params.id, credits, b.note as string | undefined);
    }),
  );
}

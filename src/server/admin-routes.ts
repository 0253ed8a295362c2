/**
 * Admin HTTP API for API keys, the same operations as `easel keys`:
 *   POST /admin/keys {name, credits?, rateLimitPerMinute?, maxConcurrent?} -> 201 {key, ...info} (secret shown once)
 *   GET  /admin/keys, GET /admin/keys/:id
 *   POST /admin/keys/:id/revoke
 *   POST /admin/keys/:id/credits {credits, note?}
 *   POST /admin/keys/:id/webhook {url: string | null} -> {webhookSecret (shown once; absent when removed), ...info}
 * and model pulls from the hub, the same as `easel pull`; once a pull is done the model is registered in this
 * server at once (`served: true`; `served: false` with `serveError` when the folder does not load):
 *   POST /admin/models/pull {repo: "owner/name[@revision]", variant?: "fp16"|"bf16", name?} -> 202 {id, status, progress}
 *   GET  /admin/models/pulls, GET /admin/models/pulls/:id -> {id, repo, status: running|done|failed, progress, result?, error?, served?, serveError?}
 * Guarded by `Authorization: Bearer <server.adminKey>`; with no admin key configured the routes do not exist.
 */
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type Config, configPaths } from "../config/index.ts";
import { EaselError, invalidInput, toEaselError } from "../core/errors.ts";
import type { KeyAdmin } from "../jobs/api-keys.ts";
import { type PullProgress, type PullResult, pullModel } from "../hub/pull.ts";

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

interface PullEntry {
  id: string;
  repo: string;
  status: "running" | "done" | "failed";
  progress?: PullProgress;
  result?: PullResult;
  error?: { code: string; message: string };
  /** Whether the pulled model is registered in this server (set once the pull is done). */
  served?: boolean;
  serveError?: { code: string; message: string };
}

export interface AdminDeps {
  config: Config;
  keys: KeyAdmin;
  /** Registers a pulled model in the running server (serve.ts); without it a pulled model is served after a restart. */
  onPulled?: (result: PullResult) => Promise<void>;
}

export async function adminRoutes(app: FastifyInstance, deps: AdminDeps): Promise<void> {
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
  // Pulls run in this process; their state lives here until the server stops.
  const pulls = new Map<string, PullEntry>();
  app.post(
    "/admin/models/pull",
    handle(async (req) => {
      const b = bodyObject(req);
      if (typeof b.repo !== "string") throw invalidInput("repo", "repo is required: owner/name or owner/name@revision");
      if (b.variant !== undefined && b.variant !== "fp16" && b.variant !== "bf16") throw invalidInput("variant", "variant must be fp16 or bf16");
      if (b.name !== undefined && typeof b.name !== "string") throw invalidInput("name", "name must be a string");
      const id = `pull_${randomUUID()}`;
      const entry: PullEntry = { id, repo: b.repo, status: "running" };
      pulls.set(id, entry);
      const started = pullModel({
        ref: b.repo,
        variant: b.variant as "fp16" | "bf16" | undefined,
        name: b.name as string | undefined,
        modelsDir: configPaths(deps.config).modelsDir,
        endpoint: deps.config.hub.endpoint,
        token: deps.config.hub.token,
        onProgress: (p) => {
          entry.progress = p;
        },
      });
      // Bad input (repository reference, name, an existing folder) answers this request; later failures land in the entry.
      const early = await Promise.race([started.then(() => undefined, (e: unknown) => e), new Promise((ok) => setImmediate(ok, undefined))]);
      if (early) {
        pulls.delete(id);
        throw early;
      }
      started.then(
        async (r) => {
          // "done" only once the model is registered (or could not be): a caller polling for done can use it at once.
          let served: Pick<PullEntry, "served" | "serveError"> = { served: false };
          if (deps.onPulled) {
            try {
              await deps.onPulled(r);
              served = { served: true };
            } catch (e) {
              const err = toEaselError(e);
              served = { served: false, serveError: { code: err.code, message: err.message } };
            }
          }
          Object.assign(entry, { status: "done", result: r, ...served });
        },
        (e) => {
          const err = toEaselError(e);
          Object.assign(entry, { status: "failed", error: { code: err.code, message: err.message } });
        },
      );
      return entry;
    }, 202),
  );
  app.get("/admin/models/pulls", handle(async () => ({ data: [...pulls.values()] })));
  app.get(
    "/admin/models/pulls/:id",
    handle(async (req) => {
      const p = pulls.get(req.params.id);
      if (!p) throw new EaselError("E_NOT_FOUND", `no pull ${req.params.id}`);
      return p;
    }),
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
  app.post(
    "/admin/keys/:id/webhook",
    handle(async (req) => {
      const b = bodyObject(req);
      if (b.url !== null && typeof b.url !== "string") throw invalidInput("url", "url is required: an http(s) URL, or null to remove the webhook");
      const { secret, info } = await deps.keys.setWebhook(req.params.id, b.url);
      return { ...info, ...(secret ? { webhookSecret: secret } : {}) };
    }),
  );
}

/**
 * The job API: `GET /v1/jobs` (the caller's jobs, newest first, `limit` + `after` pages), `GET /v1/jobs/:id`,
 * `POST /v1/jobs/:id/cancel`, `DELETE /v1/jobs/:id`. A key sees, cancels and deletes only its own jobs: any other
 * id is a 404. The key travels as `Authorization: Bearer` or `x-api-key`, so a client of any dialect reads its jobs
 * with the key it has.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { EaselError, invalidInput } from "../../core/errors.ts";
import { JOB_PAGE_MAX, type JobRecord } from "../../core/image-service.ts";
import type { DialectDeps } from "../_shared/dialect.ts";
import { authHook, bearerKey, headerKey, imageUrl, principalOf, publicBaseUrl } from "../_shared/http.ts";
import { DEFAULT_PAGE, errorBody, type JobObject, jobIdParams, jobList, jobObject, type ListQuery, listQuery, submitBody } from "./schema.ts";

export const DIALECT_ID = "easel";
export const PREFIX = "/v1/jobs";

const xApiKey = headerKey("x-api-key");
/** Bearer when an Authorization header is sent, else x-api-key. */
const anyKey: Parameters<typeof authHook>[1] = (req) => (req.headers.authorization ? bearerKey(req) : xApiKey(req));

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

/** A job as the job API answers it (also the body of a 202 for a caller that did not wait). */
export function jobJson(j: JobRecord, base: string): JobObject {
  return {
    id: j.id,
    status: j.status,
    dialect: j.dialect,
    model: j.model,
    params: j.params,
    seed: j.seed,
    warnings: j.warnings,
    error: j.error,
    images: j.images.map((img) => ({
      url: img.url ? imageUrl(base, img.url) : null,
      seed: img.seed,
      width: img.width,
      height: img.height,
      format: img.format,
    })),
    creditsReserved: j.creditsReserved,
    creditsCharged: j.creditsCharged,
    timings: j.timings,
    progress: j.progress,
    ...(j.route ? { route: j.route } : {}),
    createdAt: iso(j.createdAt)!,
    startedAt: iso(j.startedAt),
    finishedAt: iso(j.finishedAt),
  };
}

/**
 * The query, checked here rather than by Fastify's validation (attachValidation), so that a bad value is named
 * as a bad value: the boundary's messages are written for bodies.
 */
function parseListQuery(query: unknown): ListQuery {
  const r = listQuery.safeParse(query ?? {});
  if (r.success) return r.data;
  // Unknown query parameters are ignored, so the issue is about limit or after.
  const param = String(r.error.issues[0].path[0]);
  const given = JSON.stringify((query as Record<string, unknown>)[param]);
  if (param === "limit") {
    throw invalidInput(param, `Invalid value for 'limit': expected an integer from 1 to ${JOB_PAGE_MAX}, got ${given}.`, { min: 1, max: JOB_PAGE_MAX });
  }
  throw invalidInput(param, `Invalid value for '${param}': expected a job id, got ${given}.`);
}

/** Other methods on a job path: 405 with Allow, before authentication (the method is a routing matter). */
function onlyMethod(app: FastifyInstance, url: string, allowed: "GET" | "POST" | ("GET" | "POST" | "DELETE")[]): void {
  const methods = typeof allowed === "string" ? [allowed] : allowed;
  const allow = methods.join(", ");
  app.route({
    method: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].filter((m) => !methods.includes(m as "GET")),
    url,
    schema: { hide: true },
    handler: async (req, reply) => {
      reply.header("allow", allow);
      throw new EaselError("E_METHOD_NOT_ALLOWED", `Method ${req.method} is not allowed on ${url}; use ${allow}.`);
    },
  });
}

export async function easelRoutes(app: FastifyInstance, deps: DialectDeps): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const auth = authHook(deps.images, anyKey);
  const security: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];
  const errors = { 400: errorBody, 401: errorBody, 404: errorBody };

  r.get(
    PREFIX,
    {
      onRequest: auth,
      attachValidation: true,
      schema: {
        tags: ["Jobs"],
        summary: "List your jobs, newest first",
        description: "A key with a balance limit also gets its credits left in the x-remaining-credits header.",
        security,
        querystring: listQuery,
        response: { 200: jobList, ...errors },
      },
    },
    async (req, reply) => {
      const q = parseListQuery(req.query);
      const principal = principalOf(req);
      const { jobs, hasMore } = await deps.images.listJobs(principal, { limit: q.limit ?? DEFAULT_PAGE, after: q.after });
      const base = publicBaseUrl(deps.config, req);
      // The key's balance beside its history (the web page shows it); absent for a key without a balance limit.
      const credits = await deps.images.remainingCredits(principal);
      if (credits !== null) reply.header("x-remaining-credits", String(credits));
      return { data: jobs.map((j) => jobJson(j, base)), hasMore, lastId: jobs.at(-1)?.id ?? null };
    },
  );

  r.get(
    `${PREFIX}/:id`,
    { onRequest: auth, schema: { tags: ["Jobs"], summary: "Retrieve one of your jobs", security, params: jobIdParams, response: { 200: jobObject, ...errors } } },
    async (req) => jobJson(await deps.images.getJob(req.params.id, principalOf(req)), publicBaseUrl(deps.config, req)),
  );

  r.post(
    `${PREFIX}/:id/cancel`,
    {
      onRequest: auth,
      schema: {
        tags: ["Jobs"],
        summary: "Cancel one of your queued or running jobs",
        description:
          "Answers the job once it has stopped (or as it stands after a few seconds). A job that already finished is " +
          "answered unchanged.",
        security,
        params: jobIdParams,
        response: { 200: jobObject, ...errors },
      },
    },
    async (req) => jobJson(await deps.images.cancelJob(req.params.id, principalOf(req)), publicBaseUrl(deps.config, req)),
  );

  r.delete(
    `${PREFIX}/:id`,
    {
      onRequest: auth,
      schema: {
        tags: ["Jobs"],
        summary: "Delete one of your jobs",
        description:
          "Removes the job from your history with its images (unless another job shows the same bytes); a queued or " +
          "running job is cancelled first. Credits already charged stay charged. Answers 204.",
        security,
        params: jobIdParams,
        response: { 204: z.null().describe("Deleted."), ...errors },
      },
    },
    async (req, reply) => {
      await deps.images.deleteJob(req.params.id, principalOf(req));
      return reply.code(204).send(null);
    },
  );

  r.post(
    PREFIX,
    {
      onRequest: auth,
      bodyLimit: deps.config.server.imageBodyLimitBytes,
      schema: {
        tags: ["Jobs"],
        summary: "Submit a generation in any dialect without waiting",
        description:
          "The body is a generation body of the dialect named by `dialect` (openai, monica-sd, monica-playground, " +
          "playground, segmind, a1111 for txt2img), with that field added. It is validated and translated exactly as on that dialect's own " +
          "route (errors in that dialect's shape), admitted and queued; the answer is 202 with the job (poll " +
          "GET /v1/jobs/{id}, or receive the key's webhook). The same as sending that route `Prefer: respond-async`.",
        security,
        body: submitBody,
        response: { 202: jobObject, ...errors },
      },
    },
    async (req, reply) => {
      const submit = deps.submitAsync;
      if (!submit) throw new EaselError("E_NOT_SUPPORTED", "This server does not take asynchronous submissions.");
      const { dialect, ...body } = req.body;
      if (!submit.dialects.includes(dialect)) {
        throw invalidInput("dialect", `Invalid value for 'dialect': expected one of ${submit.dialects.join(", ")}, got ${JSON.stringify(dialect)}.`);
      }
      // The key travels in both schemes, so whichever the target dialect reads, it finds the caller's key.
      const key = anyKey(req);
      const headers: Record<string, string> = key === undefined ? {} : { authorization: `Bearer ${key}`, "x-api-key": key };
      const idem = req.headers["idempotency-key"];
      if (typeof idem === "string" && idem !== "") headers["idempotency-key"] = idem;
      const answer = await submit.forward(dialect, body, headers);
      // Already serialised by the target route (a JSON string with its content-type: Fastify sends it as it is); the
      // typed reply expects the 202 object, which is what that string holds when it succeeded.
      return reply.code(answer.status).headers(answer.headers).send(answer.body as never);
    },
  );

  onlyMethod(app, PREFIX, ["GET", "POST"]);
  onlyMethod(app, `${PREFIX}/:id`, ["GET", "DELETE"]);
  onlyMethod(app, `${PREFIX}/:id/cancel`, "POST");
}

/**
 * The answer to a generation the caller did not wait for (`Prefer: respond-async`, `POST /v1/jobs`): 202 with the
 * job as the job API shows it, `Location` of that job, and `Preference-Applied` (RFC 7240). Every dialect's
 * generation route answers it the same way, so an async caller reads one shape whatever API it spoke.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config/index.ts";
import type { JobAccepted } from "../core/image-service.ts";
import { publicBaseUrl } from "../dialects/_shared/http.ts";
import { jobJson } from "../dialects/easel/routes.ts";

export function sendAccepted(accepted: JobAccepted, config: Config, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { job } = accepted;
  return reply
    .code(202)
    .headers({ location: `/v1/jobs/${job.id}`, "preference-applied": "respond-async", "x-easel-job-id": job.id })
    .send(jobJson(job, publicBaseUrl(config, req)));
}

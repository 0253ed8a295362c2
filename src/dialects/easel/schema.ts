/**
 * Easel's own job API: query, path and answer shapes. Field names follow the admin API (camelCase, ISO times);
 * credits are in credits, durations in milliseconds.
 */
import { z } from "zod";
import { JOB_PAGE_MAX } from "../../core/image-service.ts";

export const DEFAULT_PAGE = 20;

export const jobIdParams = z.object({
  id: z.string().describe("A job id, as answered in the x-easel-job-id header of a generation."),
});

export const listQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(JOB_PAGE_MAX)
    .optional()
    .describe(`Jobs per page, 1-${JOB_PAGE_MAX} (default ${DEFAULT_PAGE}).`),
  after: z.string().min(1).optional().describe("Continue after this job: the lastId of the previous page."),
});

export type ListQuery = z.output<typeof listQuery>;

/** `POST /v1/jobs`: any dialect's generation body plus the dialect's id; the rest is checked by that dialect. */
export const submitBody = z.looseObject({
  dialect: z.string().describe("Whose body this is: openai, monica-sd, monica-playground, playground, segmind or a1111 (txt2img)."),
});

const warning = z.object({ code: z.string(), message: z.string(), param: z.string().optional() });

/** How the gateway served a job (core/types.ts RouteRecord): present for upstream models and models with fallbacks. */
const route = z.object({
  target: z.object({ model: z.string(), provider: z.string(), providerType: z.string().optional(), upstreamModel: z.string().optional() }),
  fallback: z.boolean(),
  attempts: z.array(
    z.object({
      model: z.string(),
      provider: z.string(),
      upstreamModel: z.string().optional(),
      call: z.number(),
      attempt: z.number(),
      outcome: z.enum(["ok", "failed", "skipped"]),
      status: z.number().optional(),
      reason: z.string().optional(),
      ms: z.number(),
    }),
  ),
  latencyMs: z.number(),
});

export const jobObject = z.object({
  id: z.string(),
  status: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]),
  dialect: z.string().describe("The API the job was asked through (openai, monica-sd, playground, segmind, ...)."),
  model: z.string(),
  params: z
    .record(z.string(), z.unknown())
    .describe("The request as Easel recorded it (canonical fields; an init image as its sha256 and size)."),
  seed: z.number().nullable().describe("Seed of the batch, once known."),
  warnings: z.array(warning),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  images: z
    .array(
      z.object({
        url: z.string().nullable().describe("Signed, expiring URL; null when the image was not stored or was deleted."),
        seed: z.number(),
        width: z.number(),
        height: z.number(),
        format: z.string(),
      }),
    )
    .describe("The images of a succeeded job."),
  creditsReserved: z.number(),
  creditsCharged: z.number(),
  timings: z.object({ queuedMs: z.number().nullable(), runMs: z.number().nullable() }),
  progress: z
    .object({ step: z.number(), totalSteps: z.number() })
    .nullable()
    .describe("The last step the run reported (updated about twice a second, from whichever machine runs the job)."),
  route: route.optional().describe("Upstream models: the provider, upstream model, every attempt, latency and final target."),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});

export type JobObject = z.output<typeof jobObject>;

export const jobList = z.object({
  data: z.array(jobObject).describe("Newest first."),
  hasMore: z.boolean(),
  lastId: z.string().nullable().describe("Pass as `after` for the next page."),
});

export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), param: z.string().nullable() }),
});

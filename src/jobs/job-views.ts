/**
 * The read side of the job service: a settled job as the answer to its request (first run and replays alike) and
 * a job as its owner sees it through the job API (one job, a page of them); signed image URLs made and opened.
 */
import { EaselError, ERROR_CATALOG, type ErrorCode, invalidInput } from "../core/errors.ts";
import { JOB_PAGE_MAX, type JobImage, type JobPage, type JobRecord, type Principal } from "../core/image-service.ts";
import type { GeneratedImage, GenerationResult } from "../core/types.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { JobRow, MetadataStore } from "../storage/metadata-store.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import { signedPath } from "./job-output.ts";
import { toCredits } from "./pricing.ts";

export interface JobViews {
  resultOf(jobId: string, bytes?: Map<string, GeneratedImage>): Promise<GenerationResult>;
  jobRecord(j: JobRow): Promise<JobRecord>;
  /** The job if it belongs to the principal; E_NOT_FOUND otherwise (another key's id reads like an unknown one). */
  getJob(id: string, principal: Principal): Promise<JobRecord>;
  /** The principal's own jobs, newest first, after the job `after` (which must be one of them). */
  listJobs(principal: Principal, page: JobPage): Promise<{ jobs: JobRecord[]; hasMore: boolean }>;
  /** A signed image URL's bytes; undefined when forged, expired, deleted or asked with another format's extension. */
  openImage(token: string): Promise<{ bytes: Uint8Array; mime: string; expiresAt: number } | undefined>;
}

export function createJobViews(deps: { store: MetadataStore; blobs: BlobStore; signer: UrlSigner; ttlSeconds: number }): JobViews {
  const { store, blobs, signer } = deps;
  const ttl = deps.ttlSeconds;
  /** Builds the answer from the settled row (first run and replays alike), or throws the job's error. */
  async function resultOf(jobId: string, bytes?: Map<string, GeneratedImage>): Promise<GenerationResult> {
    const job = await store.getJob(jobId);
    if (!job) throw new EaselError("E_INTERNAL", `job ${jobId} vanished`);
    if (job.status !== "succeeded" || !job.result) {
      const code = (job.errorCode ?? "E_INTERNAL") as ErrorCode;
      throw new EaselError(ERROR_CATALOG[code] ? code : "E_INTERNAL", job.errorMessage ?? "The job failed.");
    }
    const images: GeneratedImage[] = [];
    for (const s of job.result.images) {
      const have = bytes?.get(s.id);
      const stored = have ? undefined : await blobs.get(s.id);
      if (!have && !stored) throw new EaselError("E_NOT_FOUND", `image ${s.id} of job ${jobId} is no longer stored`);
      const row = await store.getImage(s.id);
      const format = s.format as GeneratedImage["format"];
      images.push({ ...s, format, bytes: have?.bytes ?? stored!, ...(row ? { url: signedPath(signer, s.id, ttl, format) } : {}) });
    }
    const remaining = job.keyId === null ? null : await store.balance(job.keyId);
    return {
      jobId,
      model: job.model,
      created: Math.floor(job.createdAt / 1000),
      seed: job.result.seed,
      images,
      warnings: job.result.warnings,
      ...(remaining === null ? {} : { creditsCharged: toCredits(job.creditsCharged), remainingCredits: toCredits(remaining) }),
      timings: { queuedMs: (job.startedAt ?? job.createdAt) - job.createdAt, runMs: (job.finishedAt ?? 0) - (job.startedAt ?? job.finishedAt ?? 0) },
    };
  }

  /** The job as its owner sees it: signed URLs for the images still stored, timings once known. */
  async function jobRecord(j: JobRow): Promise<JobRecord> {
    const images: JobImage[] = [];
    for (const s of j.result?.images ?? []) {
      const row = await store.getImage(s.id);
      images.push({ id: s.id, seed: s.seed, width: s.width, height: s.height, format: s.format, mime: s.mime, ...(row ? { url: signedPath(signer, s.id, ttl, s.format) } : {}) });
    }
    return {
      id: j.id,
      status: j.status,
      dialect: j.dialect,
      model: j.model,
      params: j.params,
      seed: j.seed,
      imageIds: j.imageIds,
      error: j.errorCode ? { code: j.errorCode, message: j.errorMessage ?? "" } : null,
      creditsReserved: toCredits(j.creditsReserved),
      creditsCharged: toCredits(j.creditsCharged),
      createdAt: j.createdAt,
      startedAt: j.startedAt,
      finishedAt: j.finishedAt,
      warnings: j.result?.warnings ?? [],
      ...(j.result?.route ? { route: j.result.route } : {}),
      images,
      progress: j.progress,
      timings: {
        queuedMs: j.startedAt === null ? null : j.startedAt - j.createdAt,
        runMs: j.startedAt === null || j.finishedAt === null ? null : j.finishedAt - j.startedAt,
      },
    };
  }

  async function getJob(id: string, principal: Principal): Promise<JobRecord> {
    const j = typeof id === "string" ? await store.getJob(id) : undefined;
    if (!j || j.keyId !== principal.keyId) throw new EaselError("E_NOT_FOUND", `no job ${JSON.stringify(id)}`, { param: "id" });
    return jobRecord(j);
  }

  async function listJobs(principal: Principal, page: JobPage): Promise<{ jobs: JobRecord[]; hasMore: boolean }> {
    const { limit, after } = page;
    if (!(Number.isInteger(limit) && limit >= 1 && limit <= JOB_PAGE_MAX)) {
      throw invalidInput("limit", `limit must be an integer from 1 to ${JOB_PAGE_MAX}, got ${limit}`, { min: 1, max: JOB_PAGE_MAX });
    }
    let before: { createdAt: number; id: string } | undefined;
    if (after !== undefined) {
      // Another key's job id is answered like an unknown one: ids say nothing about other keys.
      const a = typeof after === "string" ? await store.getJob(after) : undefined;
      if (!a || a.keyId !== principal.keyId) throw invalidInput("after", `after must be the id of one of your jobs, got ${JSON.stringify(after)}`);
      before = { createdAt: a.createdAt, id: a.id };
    }
    const rows = await store.listJobs({ keyId: principal.keyId, limit: limit + 1, ...(before ? { before } : {}) });
    const jobs: JobRecord[] = [];
    for (const r of rows.slice(0, limit)) jobs.push(await jobRecord(r));
    return { jobs, hasMore: rows.length > limit };
  }

  async function openImage(token: string): Promise<{ bytes: Uint8Array; mime: string; expiresAt: number } | undefined> {
    const signed = signer.verify(token);
    if (!signed) return undefined;
    const row = await store.getImage(signed.id);
    if (!row) return undefined;
    // A URL's extension names the image's format; another extension on a valid token opens nothing.
    if (signed.format !== undefined && row.mime !== `image/${signed.format}`) return undefined;
    const bytes = await blobs.get(signed.id);
    return bytes ? { bytes, mime: row.mime, expiresAt: signed.expiresAt } : undefined;
  }

  return { resultOf, jobRecord, getJob, listJobs, openImage };
}

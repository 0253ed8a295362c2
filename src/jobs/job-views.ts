/**
 * The read side of the job service: a settled job as the answer to its request (first run and replays alike) and
 * a job as its owner sees it through the job API. Image URLs are signed here.
 */
import { EaselError, ERROR_CATALOG, type ErrorCode } from "../core/errors.ts";
import type { JobImage, JobRecord } from "../core/image-service.ts";
import type { GeneratedImage, GenerationResult } from "../core/types.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { JobRow, MetadataStore } from "../storage/metadata-store.ts";
import type { UrlSigner } from "../storage/url-signer.ts";
import { signedPath } from "./job-output.ts";
import { toCredits } from "./pricing.ts";

export interface JobViews {
  resultOf(jobId: string, bytes?: Map<string, GeneratedImage>): Promise<GenerationResult>;
  jobRecord(j: JobRow): Promise<JobRecord>;
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


  return { resultOf, jobRecord };
}

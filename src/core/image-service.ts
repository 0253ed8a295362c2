import type { GenerationEvent, GenerationRequest, GenerationResult, ModelInfo, RouteRecord, Warning } from "./types.ts";

/** The caller behind an API key. `keyId` null means the server runs open (no keys configured, loopback only). */
export interface Principal {
  keyId: string | null;
  name: string;
  /** Credits left; null when the caller has no balance limit. */
  remainingCredits: number | null;
}

/** Who is asking and how, as established by the HTTP layer. */
export interface RequestContext {
  /** Dialect id ("openai", "monica", "playground", "segmind", ...), recorded with the job. */
  dialect: string;
  principal: Principal;
  idempotencyKey?: string;
  signal?: AbortSignal;
  /** Called for queue position, progress and preview frames while the job runs. */
  onEvent?: (e: GenerationEvent) => void;
  /**
   * How the dialect hands images back: "url" (default) needs them stored and signed; "bytes" (base64 or a raw
   * body) stores them only when config.images.storeB64 is set or an idempotency key may replay them.
   */
  delivery?: "url" | "bytes";
  /**
   * The caller does not wait (`Prefer: respond-async`, `POST /v1/jobs`): the job is admitted and queued, then
   * `generate` rejects with JobAccepted carrying its record; the images are stored and read later.
   */
  respondAsync?: boolean;
}

/**
 * Thrown by ImageService.generate for a caller that asked not to wait: the job was admitted (or, for an
 * Idempotency-Key replay, found) and runs without the connection. The HTTP layer answers 202 with the job.
 */
export class JobAccepted extends Error {
  constructor(readonly job: JobRecord) {
    super(`job ${job.id} accepted`);
    this.name = "JobAccepted";
  }
}

export interface JobRecord {
  id: string;
  status: "queued" | "running" | "succeeded" | "failed" | "cancelled";
  dialect: string;
  model: string;
  /** The canonical request as recorded (init image bytes omitted). */
  params: Record<string, unknown>;
  seed: number | null;
  imageIds: string[];
  error: { code: string; message: string } | null;
  creditsReserved: number;
  creditsCharged: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Warnings returned with the result (empty until the job succeeded). */
  warnings: Warning[];
  /** The images of a succeeded job; `url` is a signed path while the image is stored, else undefined. */
  images: JobImage[];
  /** Time spent waiting and running (ms), each once known. */
  timings: { queuedMs: number | null; runMs: number | null };
  /** How the gateway served a job of an upstream model or with fallbacks: provider, upstream model, attempts, latency. */
  route?: RouteRecord;
  /** The last step reported by the job's run (also when it runs on another process); null before the first. */
  progress: { step: number; totalSteps: number } | null;
}

export interface JobImage {
  id: string;
  url?: string;
  seed: number;
  width: number;
  height: number;
  format: string;
  mime: string;
}

/** The most jobs one page of `listJobs` holds. */
export const JOB_PAGE_MAX = 100;

/** Which page of a caller's jobs: at most `limit` (1-JOB_PAGE_MAX), newest first, after the job `after`. */
export interface JobPage {
  limit: number;
  after?: string;
}

/**
 * What dialects see of the rest of Easel. Dialects never talk to the engine or providers directly.
 * Errors are EaselErrors from core/errors.ts.
 */
export interface ImageService {
  /** Checks an API key (undefined when the client sent none). Throws E_AUTH_MISSING / E_AUTH_INVALID. */
  authenticate(apiKey: string | undefined): Promise<Principal>;
  /** Reserves credits, records the job, runs it, stores the images, charges; idempotent per ctx.idempotencyKey. */
  generate(req: GenerationRequest, ctx: RequestContext): Promise<GenerationResult>;
  /** Current balance of the principal (null = unlimited). */
  remainingCredits(principal: Principal): Promise<number | null>;
  /** The job if it belongs to the principal; E_NOT_FOUND otherwise. */
  getJob(id: string, principal: Principal): Promise<JobRecord>;
  /** The principal's own jobs, newest first; `after` must be one of them (E_INPUT_INVALID otherwise). */
  listJobs(principal: Principal, page: JobPage): Promise<{ jobs: JobRecord[]; hasMore: boolean }>;
  /**
   * Cancels the principal's own queued or running job (E_NOT_FOUND for anyone else's) and answers the record
   * once it has settled, or as it stands after a short wait; a finished job is answered unchanged.
   */
  cancelJob(id: string, principal: Principal): Promise<JobRecord>;
  /**
   * Deletes the principal's own job (E_NOT_FOUND for anyone else's) from its history, with its images unless
   * another job shows the same bytes; a queued or running job is cancelled first. Credits already charged stay
   * charged.
   */
  deleteJob(id: string, principal: Principal): Promise<void>;
  /**
   * Resolves a signed image URL token; undefined when forged, expired or deleted (the caller answers a bare 404).
   * `expiresAt` (ms since the epoch) is when the token stops opening the image.
   */
  openImage(token: string): Promise<{ bytes: Uint8Array; mime: string; expiresAt: number } | undefined>;
  listModels(): ModelInfo[];
  /** Resolves a public model name or alias; undefined when not installed. */
  findModel(name: string): ModelInfo | undefined;
}

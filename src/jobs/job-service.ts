/**
 * The job service: Easel's ImageService. Per request it authenticates, checks idempotency and rate limits,
 * prices the request and reserves its cost, records the job (queued) before anything runs, runs the executor
 * through the queue, encodes and stores the images, and settles exactly once: charge on success, release on
 * failure or cancellation. Requests refused before admission (auth, rate limit, credits, validation) are
 * answered at once and leave no job row.
 */
import type { Config } from "../config/index.ts";
import { configPaths } from "../config/index.ts";
import { EaselError, toEaselError } from "../core/errors.ts";
import type { SamplerNames } from "../core/image-format.ts";
import { type ImageService, JobAccepted, type RequestContext } from "../core/image-service.ts";
import type { GeneratedImage, GenerationEvent, GenerationRequest, ModelInfo } from "../core/types.ts";
import type { ImageProvider } from "../providers/spec.ts";
import { createMemoryQueue } from "../queue/memory.ts";
import { HandedBack, type JobEventBus, type JobQueue } from "../queue/queue.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { MetadataStore } from "../storage/metadata-store.ts";
import { createUrlSigner, loadOrCreateUrlSecret, type UrlSigner } from "../storage/url-signer.ts";
import { abortReason, cancelledError, checkRequest, queueOptions, replayable } from "./admission.ts";
import { authenticateKey, defaultRandom, type RandomBytes } from "./api-keys.ts";
import { recoverCrashedJobs, runRetention } from "./housekeeping.ts";
import { instanceMayBeAlive, newInstanceId } from "./instance.ts";
import { canonicalJson, initImageKey, previewEvent, recordedParams, requestFromRow, resultImages, sha256Hex, storeImages, toStored } from "./job-output.ts";
import { createJobViews } from "./job-views.ts";
import { priceMillicredits, toCredits } from "./pricing.ts";
import { createWebhookSender } from "./webhooks.ts";

// Where they were first defined, for their importers.
export { IDEMPOTENCY_TTL_MS, LOST_JOB_GRACE_MS } from "./housekeeping.ts";

const REPLAY_POLL_MS = 200;
/** How often a caller whose job runs on another process checks the row, in case the bus dropped "settled". */
const SETTLED_POLL_MS = 2000;

/** A job's progress is written to its row at most this often (and at its last step), for readers on any node. */
export const PROGRESS_WRITE_MS = 500;

/** How long cancelJob waits for a running job to stop before answering it as it stands. */
export const CANCEL_WAIT_MS = 5000;

export type Executor = (req: GenerationRequest, model: ModelInfo) => Pick<ImageProvider, "generate" | "check">;

export interface JobServiceDeps {
  config: Config;
  store: MetadataStore;
  blobs: BlobStore;
  executor: Executor;
  models: { list(): ModelInfo[]; find(name: string): ModelInfo | undefined };
  /** Serve without keys while the store has none (decided at start-up by decideOpenMode). */
  openMode?: boolean;
  /** Jobs run at once (default: config.queue.concurrency). */
  concurrency?: number;
  queue?: JobQueue<{ jobId: string }>;
  /**
   * A shared queue's event bus (Redis): jobs taken by other processes are run from their persisted request, their
   * events published here, and callers waiting on this node receive the events of jobs that run elsewhere.
   */
  events?: JobEventBus;
  /** Take jobs from the queue and run them here (default true); false: an API-only node (`--workers 0`). */
  runJobs?: boolean;
  /** URL signing secret; default: read or created in the data directory. */
  urlSecret?: Uint8Array;
  clock?: () => number;
  random?: RandomBytes;
  /** This server instance, recorded as the owner of the jobs it admits and runs (default: a new instance id). */
  instanceId?: string;
  /**
   * Whether another instance may still hold its jobs (default instanceMayBeAlive: checked on this host, assumed on
   * others). A server that holds its data directory's lock over SQLite knows every other owner is gone.
   */
  ownerAlive?: (owner: string) => boolean;
  /** How image metadata names samplers (A1111's names, from the dialects); default: Easel's scheduler ids. */
  samplerNames?: SamplerNames;
  /** Deliver the keys' completion webhooks from this process (default true). */
  webhooks?: boolean;
  /** For webhook deliveries (default: global fetch). */
  fetch?: typeof fetch;
}

export interface JobService extends ImageService {
  /**
   * Fails the queued and running jobs whose owner instance is gone (a crashed or killed server) and releases their
   * reservations; jobs of instances that may still run are kept. Over a shared queue (one with `has`), a job is kept
   * while the queue holds it or for LOST_JOB_GRACE_MS after it was recorded, whoever its owner. Call before serving
   * (over a shared queue, now and then as well).
   */
  recoverCrashedJobs(): Promise<{ failed: string[]; kept: string[] }>;
  /** Deletes images (blobs and rows) older than images.retentionDays and expired idempotency records. */
  runRetention(): Promise<{ images: number; orphans: number; idempotency: number }>;
  /**
   * Stops the queue; running and waiting jobs end cancelled. With `handBack` over a shared queue (SIGTERM), this process
   * stops taking jobs and hands its running ones back to the queue, unsettled, for another worker to take at once; its
   * own callers keep waiting for them to settle there. The store and blob store stay open (caller owns them).
   */
  close(opts?: { handBack?: boolean }): Promise<void>;
}

interface Pending {
  req: GenerationRequest;
  model: ModelInfo;
  /** Where the job's events go: the caller on this node, or the event bus for a caller on another. */
  emit: (e: GenerationEvent) => void;
  /** Store the images (always, when the caller is on another node). */
  keep: boolean;
  done: Promise<void>;
  finish: () => void;
  /** The encoded images of this run, by id (needed when they were not stored). */
  images: Map<string, GeneratedImage>;
  /** Resolves once every event taken so far has been delivered, in the order taken. */
  events: Promise<void>;
  /** Why this run failed, as thrown: its param and details (Retry-After, an upstream's field) reach the client. */
  error?: EaselError;
}

export function createJobService(deps: JobServiceDeps): JobService {
  const { config, store, blobs, executor, models } = deps;
  const now = deps.clock ?? Date.now;
  const random = deps.random ?? defaultRandom;
  const instanceId = deps.instanceId ?? newInstanceId();
  const ownerAlive = deps.ownerAlive ?? ((owner: string) => instanceMayBeAlive(owner));
  const signer: UrlSigner = createUrlSigner(deps.urlSecret ?? loadOrCreateUrlSecret(configPaths(config).dataDir), now);
  const queue =
    deps.queue ??
    createMemoryQueue<{ jobId: string }>({ concurrency: deps.concurrency ?? config.queue.concurrency, maxWaiting: config.queue.maxQueued });
  const pending = new Map<string, Pending>();
  let closing: Promise<void> | undefined;
  const views = createJobViews({ store, blobs, signer, ttlSeconds: config.images.urlTtlSeconds });
  const { resultOf, jobRecord } = views;
  const webhooks = createWebhookSender({
    store,
    config,
    clock: now,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    describe: async (id) => {
      const j = await store.getJob(id);
      return j ? jobRecord(j) : undefined;
    },
  });
  if (deps.webhooks ?? true) webhooks.start();

  const emit = (ctx: RequestContext, e: Parameters<NonNullable<RequestContext["onEvent"]>>[0]) => {
    try {
      ctx.onEvent?.(e);
    } catch {
      // A listener that throws (a closed SSE stream) must not fail the job.
    }
  };

  async function settleFailure(jobId: string, err: EaselError): Promise<void> {
    await store.settleJob({
      jobId,
      status: err.code === "E_CANCELLED" ? "cancelled" : "failed",
      at: now(),
      charged: 0,
      error: { code: err.code, message: err.message },
    });
  }

  /**
   * A job admitted by another process (or by this one before it restarted), as its row and the blob store keep it.
   * Its events go to the event bus; undefined when it is settled or gone.
   */
  async function persistedRun(jobId: string): Promise<Pending | undefined> {
    const row = await store.getJob(jobId);
    if (!row || (row.status !== "queued" && row.status !== "running")) return undefined;
    const bus = deps.events;
    let req: GenerationRequest;
    let model: ModelInfo | undefined;
    try {
      req = await requestFromRow(row.params, blobs);
      model = models.find(row.model);
      if (!model) throw new EaselError("E_MODEL_NOT_FOUND", `model ${JSON.stringify(row.model)} is not installed on this worker`, { param: "model" });
    } catch (e) {
      await settleFailure(jobId, toEaselError(e)).catch(() => undefined);
      await bus?.publish(jobId, { type: "settled" }).catch(() => undefined);
      return undefined;
    }
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const emitRemote = (e: GenerationEvent) => void bus?.publish(jobId, e).catch(() => undefined);
    return { req, model, emit: emitRemote, keep: true, done, finish, images: new Map(), events: Promise.resolve() };
  }

  async function runJob(jobId: string, signal: AbortSignal): Promise<void> {
    const local = pending.get(jobId);
    const p = local ?? (await persistedRun(jobId));
    if (!p) return;
    const { req, model } = p;
    let handedBack = false;
    // Previews are encoded concurrently but delivered in the order taken, each before the job's answer: a frame
    // whose encode finishes late must neither overtake an earlier one nor be dropped after completion.
    const deliver = (event: Promise<GenerationEvent | undefined>) => {
      p.events = Promise.all([p.events, event]).then(([, e]) => {
        if (e) p.emit(e);
      });
    };
    let progressWrittenAt = 0;
    const recordProgress = (step: number, totalSteps: number) => {
      const t = now();
      if (step < totalSteps && t - progressWrittenAt < PROGRESS_WRITE_MS) return;
      progressWrittenAt = t;
      void store.setJobProgress(jobId, step, totalSteps).catch(() => undefined);
    };
    try {
      if (!(await store.markJobRunning(jobId, now(), instanceId))) {
        // A shared queue hands a job out again when the worker that held it stopped renewing its lease: the row
        // still says running (under the lost worker), and this run takes over. Settlement stays exactly once.
        if (!(deps.events && (await store.takeOverJob(jobId, instanceId)))) return;
      }
      const res = await executor(req, model).generate(req, {
        signal,
        onEvent: (e) => {
          if (e.type === "progress") {
            recordProgress(e.step, e.totalSteps);
            deliver(Promise.resolve({ type: "progress", jobId, step: e.step, totalSteps: e.totalSteps }));
          } else deliver(previewEvent(jobId, req, e));
        },
      });
      signal.throwIfAborted();
      if (res.images.length === 0) throw new EaselError("E_ENGINE_FAILED", "the executor returned no images");
      const { images, warnings } = await resultImages(req, res, model, { metadata: config.images.parametersMetadata, samplerNames: deps.samplerNames });
      for (const img of images) p.images.set(img.id, img);
      const rows = p.keep ? await storeImages(blobs, images, now()) : [];
      signal.throwIfAborted();
      const job = await store.getJob(jobId);
      const charged = Math.round(((job?.creditsReserved ?? 0) * Math.min(images.length, req.n)) / req.n);
      await store.settleJob({
        jobId,
        status: "succeeded",
        at: now(),
        charged,
        seed: res.seed,
        result: { seed: res.seed, images: images.map(toStored), warnings, ...(res.route ? { route: res.route } : {}) },
        images: rows,
      });
    } catch (e) {
      // Handed back to the shared queue (this process is stopping): another worker runs it and settles it.
      if (signal.reason instanceof HandedBack) handedBack = true;
      else {
        p.error = signal.aborted ? abortReason(signal) : toEaselError(e);
        await settleFailure(jobId, p.error).catch(() => undefined);
      }
    } finally {
      await p.events;
      if (!handedBack) {
        // The caller waits on another node: everything it was sent comes before this.
        if (!local) await deps.events?.publish(jobId, { type: "settled" }).catch(() => undefined);
        p.finish();
      }
    }
  }

  /** A job the shared queue gave up after its workers kept dying: failed now, its caller answered, credits released. */
  async function givenUp(jobId: string): Promise<void> {
    const err = new EaselError("E_INTERNAL", "The workers running this job stopped too many times; it was given up.");
    await settleFailure(jobId, err).catch(() => undefined);
    await deps.events?.publish(jobId, { type: "settled" }).catch(() => undefined);
  }

  // A shared queue gives this process only jobs for the models it has (one lane per model), and advertises them.
  if (deps.runJobs ?? true) {
    queue.process((job) => runJob(job.payload.jobId, job.signal), { lanes: models.list().map((m) => m.id), onGivenUp: (id) => void givenUp(id) });
  }

  async function waitSettled(jobId: string, signal?: AbortSignal): Promise<void> {
    const local = pending.get(jobId);
    if (local) return local.done;
    for (;;) {
      const job = await store.getJob(jobId);
      if (!job || (job.status !== "queued" && job.status !== "running")) return;
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, REPLAY_POLL_MS));
    }
  }

  /**
   * Queues an admitted job that no connection waits for, and answers it (JobAccepted). It runs from its persisted
   * request like a job taken from a shared queue, and its images are stored for the job API.
   */
  async function queueDetached(jobId: string, req: GenerationRequest, qopts: ReturnType<typeof queueOptions>): Promise<never> {
    try {
      if (req.initImage) await blobs.put(initImageKey(sha256Hex(req.initImage)), req.initImage, "application/octet-stream");
      if (req.mask) await blobs.put(initImageKey(sha256Hex(req.mask)), req.mask, "application/octet-stream");
      await queue.add(jobId, { jobId }, qopts);
    } catch (e) {
      await settleFailure(jobId, toEaselError(e)).catch(() => undefined);
      throw e;
    }
    throw new JobAccepted(await jobRecord((await store.getJob(jobId))!));
  }

  const unserved = (model: string) =>
    new EaselError("E_OVERLOADED", `No worker that has model ${JSON.stringify(model)} is running; retry once one has started.`, {
      param: "model",
      details: { retryAfterSeconds: Math.max(1, config.queue.leaseSeconds), model },
    });

  async function cancel(jobId: string, model: string): Promise<void> {
    const outcome = await queue.cancel(jobId, model);
    if (outcome === "removed") {
      await settleFailure(jobId, cancelledError());
      pending.get(jobId)?.finish();
    }
  }

  const service: JobService = {
    authenticate: (apiKey) => authenticateKey(store, apiKey, deps.openMode ?? false),

    async generate(req, ctx) {
      const model = models.find(req.model);
      if (!model) throw new EaselError("E_MODEL_NOT_FOUND", `model ${JSON.stringify(req.model)} is not installed`, { param: "model" });
      checkRequest(req, model);
      // The executor's own check (an upstream target's sizes, seeds, ...), also before admission.
      executor(req, model).check?.(req);
      ctx.signal?.throwIfAborted();
      const qopts = queueOptions(config, req, model, ctx.principal.keyId);
      // Refused here, a full queue leaves nothing behind: no job row, reservation or rate-limit use.
      await queue.checkCapacity(qopts);
      // Over a shared queue, a model that no live worker (nor this node's own engine) takes would wait forever: refused
      // before admission. A request with an Idempotency-Key is admitted first, so that the retry of a job that settled
      // meanwhile is answered whatever runs now; a new one is then failed at once (nothing charged).
      const served = queue.serving ? await queue.serving(model.id) : true;
      if (!served && ctx.idempotencyKey === undefined) throw unserved(model.id);
      const cost = priceMillicredits(config, model, req);
      const jobId = `job_${Buffer.from(random(12)).toString("hex")}`;
      const { warnings: translated, ...rest } = req;
      const canonical = { ...rest, model: model.id };
      // The whole request is kept with the job (the dialect's warnings included; the init image's bytes go to the
      // blob store below, before the job is queued), so any process can run it.
      const recorded = recordedParams(translated && translated.length > 0 ? { ...canonical, warnings: translated } : canonical);
      const admit = await store.admitJob({
        job: { id: jobId, keyId: ctx.principal.keyId, dialect: ctx.dialect, model: model.id, params: recorded, owner: instanceId },
        cost,
        now: now(),
        defaultLimits: {
          ...(config.limits.requestsPerMinute === undefined ? {} : { requestsPerMinute: config.limits.requestsPerMinute }),
          ...(config.limits.maxConcurrent === undefined ? {} : { maxConcurrent: config.limits.maxConcurrent }),
        },
        ...(ctx.idempotencyKey === undefined
          ? {}
          : { idempotency: { key: ctx.idempotencyKey, bodyHash: sha256Hex(canonicalJson({ dialect: ctx.dialect, req: canonical })), replayable } }),
      });
      switch (admit.status) {
        case "key_revoked":
          throw new EaselError("E_AUTH_INVALID", "This API key has been revoked.");
        case "rate_limited": {
          const retryAfterSeconds = Math.max(1, Math.ceil(admit.retryAfterMs / 1000));
          const what = admit.limit === "requests_per_minute" ? "requests per minute" : "concurrent jobs";
          throw new EaselError("E_RATE_LIMITED", `Rate limit reached (${what}); retry after ${retryAfterSeconds} s.`, {
            details: { retryAfterSeconds, limit: admit.limit },
          });
        }
        case "insufficient_credits":
          throw new EaselError("E_CREDITS_INSUFFICIENT", `Not enough credits: this request costs ${toCredits(admit.cost)}, the balance is ${toCredits(admit.balance)}.`, {
            details: { required: toCredits(admit.cost), remainingCredits: toCredits(admit.balance) },
          });
        case "idempotency_conflict":
          throw new EaselError("E_IDEMPOTENCY_CONFLICT", "This Idempotency-Key was already used with a different request body.", {
            details: { jobId: admit.jobId },
          });
        case "replay":
          if (ctx.respondAsync) throw new JobAccepted(await jobRecord((await store.getJob(admit.jobId))!));
          await waitSettled(admit.jobId, ctx.signal);
          return resultOf(admit.jobId);
        case "admitted":
          break;
      }
      if (!served) {
        await settleFailure(jobId, unserved(model.id));
        throw unserved(model.id);
      }
      if (ctx.respondAsync) await queueDetached(jobId, req, qopts);
      let finish!: () => void;
      const done = new Promise<void>((r) => (finish = r));
      // The queued event is the first of the job's events, whenever its run starts.
      let announce!: (position: number | undefined) => void;
      const queued = new Promise<number | undefined>((r) => (announce = r)).then((position) => {
        if (position !== undefined) emit(ctx, { type: "queued", jobId, position });
      });
      const keep = (ctx.delivery ?? "url") === "url" || config.images.storeB64 || ctx.idempotencyKey !== undefined || deps.events !== undefined;
      const entry: Pending = { req, model, emit: (e) => emit(ctx, e), keep, done, finish, images: new Map(), events: queued };
      pending.set(jobId, entry);
      const onAbort = () => void cancel(jobId, model.id).catch(() => undefined);
      ctx.signal?.addEventListener("abort", onAbort, { once: true });
      let unsubscribe: (() => Promise<void>) | undefined;
      let polling: NodeJS.Timeout | undefined;
      try {
        if (req.initImage) await blobs.put(initImageKey(sha256Hex(req.initImage)), req.initImage, "application/octet-stream");
        if (req.mask) await blobs.put(initImageKey(sha256Hex(req.mask)), req.mask, "application/octet-stream");
        if (deps.events) {
          // Run by another process: its events arrive over the bus, in order, then "settled". Pub/sub may drop a
          // message, so the row is also checked now and then.
          unsubscribe = await deps.events.subscribe(jobId, (m) => {
            const e = m as GenerationEvent | { type: "settled" };
            entry.events = entry.events.then(() => {
              if (e.type === "settled") finish();
              else emit(ctx, e);
            });
          });
          polling = setInterval(() => {
            void store.getJob(jobId).then((j) => {
              if (j && j.status !== "queued" && j.status !== "running") entry.events.then(finish);
            }, () => undefined);
          }, SETTLED_POLL_MS);
        }
        const { position } = await queue.add(jobId, { jobId }, qopts);
        announce(position);
        await done;
        // The row keeps the code and message (replays answer those); the first answer keeps the error whole.
        if (entry.error) throw entry.error;
        return await resultOf(jobId, entry.images);
      } catch (e) {
        announce(undefined);
        // The queue refused the job (a bound reached since checkCapacity): it never ran, so release its reservation.
        if (!(await store.getJob(jobId).then((j) => j && j.status !== "queued" && j.status !== "running"))) {
          await settleFailure(jobId, toEaselError(e)).catch(() => undefined);
        }
        throw e;
      } finally {
        ctx.signal?.removeEventListener("abort", onAbort);
        clearInterval(polling);
        await unsubscribe?.().catch(() => undefined);
        pending.delete(jobId);
      }
    },

    async remainingCredits(principal) {
      if (principal.keyId === null) return null;
      const b = await store.balance(principal.keyId);
      return b === null ? null : toCredits(b);
    },

    getJob: views.getJob,
    listJobs: views.listJobs,
    openImage: views.openImage,

    listModels: () => models.list(),
    findModel: (name) => models.find(name),

    async cancelJob(id, principal) {
      const job = await service.getJob(id, principal);
      if (job.status !== "queued" && job.status !== "running") return job;
      await cancel(id, job.model);
      // A running job stops at the executor's next abort check; answer once it has settled, or as it stands.
      const stop = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        waitSettled(id, stop.signal).catch(() => undefined),
        new Promise<void>((r) => {
          timer = setTimeout(r, CANCEL_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
      stop.abort();
      return service.getJob(id, principal);
    },

    async deleteJob(id, principal) {
      const job = await service.cancelJob(id, principal);
      if (job.status === "queued" || job.status === "running") {
        throw new EaselError("E_INPUT_INVALID", `job ${id} is still ${job.status} after being cancelled; delete it once it has stopped`, { param: "id" });
      }
      const { orphanedImageIds } = await store.deleteJob(id);
      // Rows first, then bytes: a crash in between leaves blobs without rows, which runRetention removes.
      for (const imageId of orphanedImageIds) await blobs.delete(imageId);
    },

    recoverCrashedJobs: () => recoverCrashedJobs({ store, queue, now, instanceId, ownerAlive, isPending: (id) => pending.has(id) }),

    runRetention: () => runRetention({ store, blobs, config, now }),

    close(opts = {}) {
      closing ??= (async () => {
        await webhooks.stop();
        const waiting = [...pending.keys()];
        await queue.close({ handBack: opts.handBack ?? false });
        // Handed back, this node's callers' jobs run elsewhere: the callers keep waiting for them (bus and row).
        if (opts.handBack && deps.events) return;
        for (const id of waiting) {
          const j = await store.getJob(id);
          if (j && (j.status === "queued" || j.status === "running")) await settleFailure(id, cancelledError()).catch(() => undefined);
          pending.get(id)?.finish();
        }
      })();
      return closing;
    },
  };
  return service;
}

/**
 * The job queue contract. Payloads are plain JSON-serialisable data so that a Redis-backed driver (BullMQ) can
 * carry them between processes; the in-process driver is memory.ts. Delivery is at-most-once per process: the
 * durable record of a job is its row in the metadata store, which is written before `add`.
 *
 * Scheduling is fair across groups (Easel's group is the API key): every job names its group, jobs of one group
 * start in the order they were added, and groups take turns in proportion to their priority and to the size of
 * their jobs, so one group's flood never makes another group's job wait behind all of it. Everything a driver
 * needs for that (group, priority, cost, time limit, the group's bound) travels with the job.
 */
export interface QueueJob<P> {
  id: string;
  payload: P;
  group: string;
  /**
   * Aborted by `cancel(id)` or `close()` (reason: an E_CANCELLED EaselError) or when the job has run for its
   * `timeoutMs` (reason: an E_TIMEOUT EaselError) while the handler runs.
   */
  signal: AbortSignal;
}

export type CancelOutcome = "removed" | "aborted" | "unknown";

export interface QueueAddOptions {
  /** Fairness group (Easel: the API key id, "" in open mode). */
  group: string;
  /** The group's share of turns while other groups wait too (> 0, default 1): priority 2 gets twice the work of 1. */
  priority?: number;
  /** Relative amount of work in the job (> 0, default 1): groups take turns by work done, not by job count. */
  cost?: number;
  /** Longest the handler may run (ms); then the job's signal aborts with E_TIMEOUT. Unset: no limit. */
  timeoutMs?: number;
  /** Most jobs of this group that may wait (not yet started) at once; `add` past it throws E_RATE_LIMITED. */
  maxWaitingInGroup?: number;
  /**
   * Which processes may take the job (Easel: its model id): only those that listed this lane in `process`. Drivers
   * within one process, where the one handler serves everything, ignore it.
   */
  lane?: string;
}

export interface ProcessOptions {
  /** The lanes this process takes jobs from (shared drivers; unset: jobs added without a lane). */
  lanes?: string[];
  /**
   * Shared drivers: a job of these lanes that the queue gave up, its lease lost more times than allowed (the processes
   * running it kept dying); it will not run again, and nobody settles it unless this does.
   */
  onGivenUp?: (id: string) => void;
}

export interface CloseOptions {
  /**
   * Shared drivers: running jobs are handed back to the queue, where another process takes them at once, instead of
   * ending cancelled. Their handlers see their signal aborted with a HandedBack reason and must leave them unsettled.
   */
  handBack?: boolean;
}

/** The abort reason of a running job that its process hands back to a shared queue while it stops. */
export class HandedBack extends Error {
  constructor() {
    super("This process is stopping; the job goes back to the queue for another worker.");
    this.name = "HandedBack";
  }
}

export interface QueueLimits {
  /** Most jobs waiting (not yet started) in the whole queue; `add` past it throws E_OVERLOADED. */
  maxWaiting?: number;
}

export interface JobQueue<P> {
  readonly driver: string;
  /**
   * Enqueues; resolves with how many waiting jobs start before this one (0 = next to start). Past a bound it
   * throws, adding nothing: E_OVERLOADED (the whole queue) or E_RATE_LIMITED (the group), each with
   * `details.retryAfterSeconds`, an estimate of when a place frees up.
   */
  add(id: string, payload: P, opts: QueueAddOptions): Promise<{ position: number }>;
  /** Throws exactly what `add` would throw now for a job with these options, without adding anything. */
  checkCapacity(opts: QueueAddOptions): Promise<void>;
  /** Registers the one handler; jobs start (up to the queue's concurrency, over all lanes) once it is set. */
  process(handler: (job: QueueJob<P>) => Promise<void>, opts?: ProcessOptions): void;
  /** A waiting job is removed (its handler never runs); a running one has its signal aborted. `lane` as added. */
  cancel(id: string, lane?: string): Promise<CancelOutcome>;
  /** Jobs waiting and running; with `group`, also that group's waiting jobs. */
  stats(group?: string): Promise<{ waiting: number; active: number; groupWaiting?: number }>;
  /**
   * Whether the job waits or runs in the queue. Drivers shared between processes have it: there a job's record
   * outlives any one process, and a job the queue no longer holds (lost before it was queued, or given up after its
   * workers kept dying) is one nobody will settle.
   */
  has?(id: string, lane?: string): Promise<boolean>;
  /**
   * Shared drivers: whether a live process takes jobs of this lane now (each process that calls `process` renews
   * its lanes while it runs; a process that died drops out within a lease).
   */
  serving?(lane: string): Promise<boolean>;
  /** Shared drivers: resolves once the lanes given to `process` are advertised (a process's start waits for it). */
  whenServing?(): Promise<void>;
  /** Stops starting jobs, aborts the running ones (or hands them back) and waits for their handlers to return. */
  close(opts?: CloseOptions): Promise<void>;
}

/**
 * Messages about jobs between processes (a job's progress and previews from the worker that runs it to the API node
 * that holds its caller). At-most-once, in the order one publisher sent them; messages are JSON with byte arrays.
 */
export interface JobEventBus {
  publish(jobId: string, message: unknown): Promise<void>;
  /** Calls `listener` with each message about `jobId` until the returned function is called. */
  subscribe(jobId: string, listener: (message: unknown) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

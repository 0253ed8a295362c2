/**
 * The job queue contract. Payloads are plain JSON-serialisable data so that a Redis-backed driver (BullMQ) can
 * carry them between processes; the in-process driver is memory.ts. Delivery is at-most-once per process: the
 * durable record of a job is its row in the metadata store, which is written before `add`.
 */
export interface QueueJob<P> {
  id: string;
  payload: P;
  /** Aborted by `cancel(id)` or `close()` while the handler runs. */
  signal: AbortSignal;
}

export type CancelOutcome = "removed" | "aborted" | "unknown";

export interface JobQueue<P> {
  readonly driver: string;
  /** Enqueues; resolves with how many jobs wait ahead of this one (0 = next to start). */
  add(id: string, payload: P): Promise<{ position: number }>;
  /** Registers the one handler; jobs start (up to the queue's concurrency) once it is set. */
  process(handler: (job: QueueJob<P>) => Promise<void>): void;
  /** A waiting job is removed (its handler never runs); a running one has its signal aborted. */
  cancel(id: string): Promise<CancelOutcome>;
  stats(): Promise<{ waiting: number; active: number }>;
  /** Stops starting jobs, aborts the running ones and waits for their handlers to return. */
  close(): Promise<void>;
}

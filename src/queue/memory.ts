/** In-process FIFO JobQueue with a concurrency limit (the embedded default of DESIGN.md §4). */
import { EaselError } from "../core/errors.ts";
import type { CancelOutcome, JobQueue, QueueJob } from "./queue.ts";

export interface MemoryQueueOptions {
  /** Handlers running at once (>= 1). */
  concurrency: number;
}

export function createMemoryQueue<P>(opts: MemoryQueueOptions): JobQueue<P> {
  if (!(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new EaselError("E_INPUT_INVALID", `queue concurrency must be an integer >= 1, got ${opts.concurrency}`, {
      param: "concurrency",
    });
  }
  const waiting: { id: string; payload: P }[] = [];
  const active = new Map<string, { ctrl: AbortController; done: Promise<void> }>();
  let handler: ((job: QueueJob<P>) => Promise<void>) | undefined;
  let closed = false;

  function pump(): void {
    while (handler && !closed && active.size < opts.concurrency && waiting.length > 0) {
      const next = waiting.shift()!;
      const ctrl = new AbortController();
      const job: QueueJob<P> = { id: next.id, payload: next.payload, signal: ctrl.signal };
      const run = handler;
      // A handler that throws has failed to settle its own job; the queue only guarantees the slot is freed.
      const done = Promise.resolve()
        .then(() => run(job))
        .catch(() => undefined)
        .finally(() => {
          active.delete(next.id);
          pump();
        });
      active.set(next.id, { ctrl, done });
    }
  }

  return {
    driver: "memory",

    async add(id, payload) {
      if (closed) throw new EaselError("E_OVERLOADED", "the queue is shutting down");
      if (active.has(id) || waiting.some((w) => w.id === id)) {
        throw new EaselError("E_INTERNAL", `job ${id} is already queued`);
      }
      waiting.push({ id, payload });
      const position = waiting.length - 1;
      queueMicrotask(pump);
      return { position };
    },

    process(h) {
      if (handler) throw new EaselError("E_INTERNAL", "the queue already has a handler");
      handler = h;
      pump();
    },

    async cancel(id): Promise<CancelOutcome> {
      const i = waiting.findIndex((w) => w.id === id);
      if (i >= 0) {
        waiting.splice(i, 1);
        return "removed";
      }
      const a = active.get(id);
      if (a) {
        a.ctrl.abort(new EaselError("E_CANCELLED", "The request was cancelled."));
        return "aborted";
      }
      return "unknown";
    },

    async stats() {
      return { waiting: waiting.length, active: active.size };
    },

    async close() {
      closed = true;
      waiting.length = 0;
      for (const a of active.values()) a.ctrl.abort(new EaselError("E_CANCELLED", "The server is shutting down."));
      await Promise.all([...active.values()].map((a) => a.done));
    },
  };
}

/**
 * In-process JobQueue (the embedded default of DESIGN.md §4): a concurrency limit, fair turns across groups,
 * bounds on waiting jobs and a run-time limit per job.
 *
 * Order is start-time fair queuing (SFQ; Goyal, Vin & Cheng 1996): a group's head job gets the start tag
 * max(V, F), where V is the tag of the job that started last and F the group's finish tag (its last started job's
 * tag + cost / priority); the waiting head with the smallest tag starts next, ties going to the group whose head
 * has waited longest. With equal costs and priorities that is round robin across groups, and a group that was
 * idle starts right after the jobs running now, however long another group's backlog. Written here because no
 * maintained npm queue orders across groups this way (p-queue has priorities only; bottleneck's groups are
 * independent limiters that share no concurrency).
 */
import { EaselError } from "../core/errors.ts";
import type { CancelOutcome, JobQueue, QueueAddOptions, QueueJob, QueueLimits } from "./queue.ts";

export interface MemoryQueueOptions extends QueueLimits {
  /** Handlers running at once (>= 1). */
  concurrency: number;
  clock?: () => number;
}

interface Entry<P> {
  id: string;
  payload: P;
  group: string;
  /** cost / priority: how far the group's finish tag moves when this job starts. */
  stride: number;
  timeoutMs?: number;
}

interface GroupState<P> {
  entries: Entry<P>[];
  /** Finish tag of the group's last started job. */
  finish: number;
  /** Start tag and tie-break sequence of the head entry (valid while entries is not empty). */
  headStart: number;
  headSeq: number;
}

interface FairState<P> {
  groups: Map<string, GroupState<P>>;
  /** Virtual time: the start tag of the job that started last. */
  vtime: number;
  seq: number;
}

function push<P>(s: FairState<P>, e: Entry<P>): void {
  let g = s.groups.get(e.group);
  if (!g) {
    g = { entries: [], finish: 0, headStart: 0, headSeq: 0 };
    s.groups.set(e.group, g);
  }
  if (g.entries.length === 0) {
    g.headStart = Math.max(s.vtime, g.finish);
    g.headSeq = s.seq++;
  }
  g.entries.push(e);
}

function pop<P>(s: FairState<P>): Entry<P> | undefined {
  let best: GroupState<P> | undefined;
  for (const g of s.groups.values()) {
    if (g.entries.length === 0) continue;
    if (!best || g.headStart < best.headStart || (g.headStart === best.headStart && g.headSeq < best.headSeq)) best = g;
  }
  if (!best) return undefined;
  const e = best.entries.shift()!;
  s.vtime = best.headStart;
  best.finish = best.headStart + e.stride;
  if (best.entries.length > 0) {
    best.headStart = best.finish;
    best.headSeq = s.seq++;
  }
  // An idle group whose finish tag is behind V would start at V anyway: nothing left to remember.
  for (const [k, g] of s.groups) if (g.entries.length === 0 && g.finish <= s.vtime) s.groups.delete(k);
  return e;
}

/** Removes a waiting entry; the group's next head keeps the removed head's start tag. */
function remove<P>(s: FairState<P>, id: string): Entry<P> | undefined {
  for (const g of s.groups.values()) {
    const i = g.entries.findIndex((e) => e.id === id);
    if (i >= 0) return g.entries.splice(i, 1)[0];
  }
  return undefined;
}

/** How many waiting entries start before the first one that `is` picks (all of them when none does). */
function startsBefore<P>(s: FairState<P>, is: (e: Entry<P>) => boolean): number {
  const copy: FairState<P> = {
    groups: new Map([...s.groups].map(([k, g]) => [k, { ...g, entries: [...g.entries] }])),
    vtime: s.vtime,
    seq: s.seq,
  };
  let n = 0;
  for (let e = pop(copy); e; e = pop(copy)) {
    if (is(e)) return n;
    n++;
  }
  return n;
}

function positive(v: number | undefined, param: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!(Number.isFinite(v) && v > 0)) throw new EaselError("E_INPUT_INVALID", `queue ${param} must be a number > 0, got ${v}`, { param });
  return v;
}

function countOrUnbounded(v: number | undefined, param: string): number {
  if (v === undefined) return Number.POSITIVE_INFINITY;
  if (!(Number.isInteger(v) && v >= 0)) throw new EaselError("E_INPUT_INVALID", `queue ${param} must be an integer >= 0, got ${v}`, { param });
  return v;
}

/** Weight of the newest run in the running mean of run times used for Retry-After estimates. */
const RUN_TIME_SMOOTHING = 0.3;

export function createMemoryQueue<P>(opts: MemoryQueueOptions): JobQueue<P> {
  if (!(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new EaselError("E_INPUT_INVALID", `queue concurrency must be an integer >= 1, got ${opts.concurrency}`, {
      param: "concurrency",
    });
  }
  const maxWaiting = countOrUnbounded(opts.maxWaiting, "maxWaiting");
  const now = opts.clock ?? Date.now;
  const state: FairState<P> = { groups: new Map(), vtime: 0, seq: 0 };
  let waiting = 0;
  const active = new Map<string, { ctrl: AbortController; done: Promise<void>; startedAt: number }>();
  let handler: ((job: QueueJob<P>) => Promise<void>) | undefined;
  let closed = false;
  let meanRunMs: number | undefined;

  const queued = (id: string) => active.has(id) || [...state.groups.values()].some((g) => g.entries.some((e) => e.id === id));

  /** Expected run time of one job: the running mean, or before any job finished the longest run so far. */
  function runEstimateMs(): number {
    if (meanRunMs !== undefined) return meanRunMs;
    const t = now();
    return Math.max(0, ...[...active.values()].map((a) => t - a.startedAt));
  }

  /** Seconds until about `starts` more jobs have started (>= 1). */
  function secondsUntil(starts: number): number {
    return Math.max(1, Math.ceil((starts * runEstimateMs()) / opts.concurrency / 1000));
  }

  function startJob(e: Entry<P>, run: (job: QueueJob<P>) => Promise<void>): void {
    const ctrl = new AbortController();
    const startedAt = now();
    const timer =
      e.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            const seconds = Math.round(e.timeoutMs! / 100) / 10;
            ctrl.abort(
              new EaselError("E_TIMEOUT", `The job ran for ${seconds} s, the longest this server allows, and was stopped.`, {
                details: { timeoutSeconds: seconds },
              }),
            );
          }, e.timeoutMs);
    const job: QueueJob<P> = { id: e.id, payload: e.payload, group: e.group, signal: ctrl.signal };
    // A handler that throws has failed to settle its own job; the queue only guarantees the slot is freed.
    const done = Promise.resolve()
      .then(() => run(job))
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        const ran = now() - startedAt;
        meanRunMs = meanRunMs === undefined ? ran : meanRunMs + RUN_TIME_SMOOTHING * (ran - meanRunMs);
        active.delete(e.id);
        pump();
      });
    active.set(e.id, { ctrl, done, startedAt });
  }

  function pump(): void {
    while (handler && !closed && active.size < opts.concurrency) {
      const next = pop(state);
      if (!next) return;
      waiting--;
      startJob(next, handler);
    }
  }

  function validate(o: QueueAddOptions): { stride: number; maxInGroup: number } {
    if (typeof o.group !== "string") throw new EaselError("E_INPUT_INVALID", "queue group must be a string", { param: "group" });
    const stride = positive(o.cost, "cost", 1) / positive(o.priority, "priority", 1);
    if (o.timeoutMs !== undefined) positive(o.timeoutMs, "timeoutMs", 0);
    return { stride, maxInGroup: countOrUnbounded(o.maxWaitingInGroup, "maxWaitingInGroup") };
  }

  /** The refusal for a job that would have to wait now, or undefined when there is room. */
  function refusal(o: QueueAddOptions, maxInGroup: number): EaselError | undefined {
    if (closed) return new EaselError("E_OVERLOADED", "The server is shutting down.", { details: { retryAfterSeconds: 1 } });
    if (handler && active.size < opts.concurrency) return undefined; // starts at once, waits for nothing
    const inGroup = state.groups.get(o.group)?.entries.length ?? 0;
    if (inGroup >= maxInGroup) {
      // A place in the group frees when its first waiting job starts.
      const retryAfterSeconds = secondsUntil(startsBefore(state, (e) => e.group === o.group) + 1);
      return new EaselError(
        "E_RATE_LIMITED",
        `Too many queued jobs for this key (${inGroup} waiting, the most allowed); retry after ${retryAfterSeconds} s.`,
        { details: { retryAfterSeconds, limit: "queued_jobs", waiting: inGroup, maxWaiting: maxInGroup } },
      );
    }
    if (waiting >= maxWaiting) {
      const retryAfterSeconds = secondsUntil(1);
      return new EaselError("E_OVERLOADED", `The server is busy (${waiting} jobs waiting, the most it queues); retry after ${retryAfterSeconds} s.`, {
        details: { retryAfterSeconds, waiting, maxWaiting },
      });
    }
    return undefined;
  }

  return {
    driver: "memory",

    async add(id, payload, o) {
      const { stride, maxInGroup } = validate(o);
      const refused = refusal(o, maxInGroup);
      if (refused) throw refused;
      if (queued(id)) throw new EaselError("E_INTERNAL", `job ${id} is already queued`);
      push(state, { id, payload, group: o.group, stride, ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) });
      waiting++;
      pump();
      return { position: active.has(id) ? 0 : startsBefore(state, (e) => e.id === id) };
    },

    async checkCapacity(o) {
      const refused = refusal(o, validate(o).maxInGroup);
      if (refused) throw refused;
    },

    process(h) {
      if (handler) throw new EaselError("E_INTERNAL", "the queue already has a handler");
      handler = h;
      pump();
    },

    async cancel(id): Promise<CancelOutcome> {
      if (remove(state, id)) {
        waiting--;
        return "removed";
      }
      const a = active.get(id);
      if (a) {
        a.ctrl.abort(new EaselError("E_CANCELLED", "The request was cancelled."));
        return "aborted";
      }
      return "unknown";
    },

    async stats(group) {
      const out = { waiting, active: active.size };
      return group === undefined ? out : { ...out, groupWaiting: state.groups.get(group)?.entries.length ?? 0 };
    },

    async close() {
      closed = true;
      state.groups.clear();
      waiting = 0;
      for (const a of active.values()) a.ctrl.abort(new EaselError("E_CANCELLED", "The server is shutting down."));
      await Promise.all([...active.values()].map((a) => a.done));
    },
  };
}

/**
 * JobQueue on Redis through BullMQ (DESIGN.md §4, scaled out): every API node adds to one queue, and every process
 * that calls `process` (an `easel serve` with workers, an `easel worker`) takes jobs from it. BullMQ holds each
 * running job under a lock its worker renews; a worker that dies stops renewing, and BullMQ's stalled-job check
 * puts the job back in the queue for another worker (the lease).
 *
 * Fairness maps the in-process driver's start-time fair queuing (memory.ts) onto BullMQ priorities. BullMQ (the
 * open-source edition) has no groups, but it starts waiting jobs in order of (priority, insertion). So each job
 * gets its SFQ start tag when it is added, atomically in one Lua script over the queue's fair-queuing state:
 * tag = max(V, F[group]) and F[group] = tag + cost / priority, with V the tag of the job that started last
 * (moved forward by the worker that starts it). The tag, quantised to 1/TAG_STEPS and counted from a base that
 * moves up whenever no job waits, is the BullMQ priority. A group's jobs thus keep their order, an idle group's
 * job gets a tag near V and overtakes a flood, and weights follow cost / priority as in memory.ts. Tags that differ
 * by less than 1/TAG_STEPS start in insertion order, and a backlog deep enough to pass BullMQ's largest priority
 * (2^21 - 1) starts in insertion order at that priority, rather than being refused.
 *
 * Beside BullMQ's own keys the same script keeps what bounds and positions need: the waiting jobs by start order
 * (one sorted set for the queue, one per group) and each waiting job's group. Refusals (E_OVERLOADED,
 * E_RATE_LIMITED) are decided there too, so two API nodes cannot both take the last place. Cancelling a running
 * job, wherever it runs, goes over Redis pub/sub to the process that runs it; run-time limits are timers in that
 * process, as in memory.ts.
 *
 * Lanes (Easel: one per model): a job added with a lane waits in that lane's own BullMQ queue (`<name>@<lane>`), and
 * only processes that listed the lane in `process` take it, so a worker takes only jobs for models it has. Such a
 * process advertises its lanes in Redis (a sorted set per lane, scored by when the advertisement runs out, renewed
 * every half lease and timed by Redis's own clock), so that an API node can refuse a job no live process would take
 * (`serving`). One process's concurrency spans all its lanes: while it is full its lanes stop fetching, and a job one
 * of them took meanwhile goes straight back to its queue for another process. Fair-queuing tags and bounds stay
 * shared across lanes.
 *
 * Stopping with `close({ handBack: true })` (SIGTERM on a worker) aborts the running handlers with a HandedBack
 * reason and moves their jobs back to their queues (BullMQ's moveToWait), releasing the lease at once, so another
 * worker takes them without waiting for it to run out.
 */
import { randomUUID } from "node:crypto";
import { type Job, Queue, WaitingError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { EaselError } from "../core/errors.ts";
import { type CancelOutcome, HandedBack, type JobQueue, type QueueAddOptions, type QueueJob, type QueueLimits } from "./queue.ts";
import { redactUrl } from "./redis-events.ts";

export { redactUrl };

export interface BullmqQueueOptions extends QueueLimits {
  /** `redis://host:6379/0` (`rediss://` for TLS). */
  redisUrl: string;
  /** Queue name; every node of one deployment uses the same one. */
  name: string;
  /** Handlers this process runs at once (>= 1). */
  concurrency: number;
  /**
   * How long a worker's hold on a running job lasts without renewal (ms, default 30 s; renewed every half of it).
   * A job whose worker stopped renewing is taken again by another worker after about this long.
   */
  leaseMs?: number;
  /** Times a job may be taken again after its worker stopped renewing, before it fails (default 5). */
  maxLeaseLosses?: number;
  /** Redis key prefix (default "easel"). */
  prefix?: string;
}

/** The payload as BullMQ carries it: the caller's payload and what fairness and time limits need. */
interface Carried<P> {
  payload: P;
  group: string;
  tag: number;
  timeoutMs?: number;
}

/** Tag quantisation: priorities resolve 1/TAG_STEPS of a cost unit. */
const TAG_STEPS = 16;
/** BullMQ's largest priority (Job's PRIORITY_LIMIT). */
const PRIORITY_LIMIT = 2 ** 21 - 1;
/** Weight of the newest run in the running mean of run times used for Retry-After estimates. */
const RUN_TIME_SMOOTHING = 0.3;

/**
 * KEYS: state hash, waiting zset, job->group hash, group zset prefix. ARGV: id, group, stride, maxWaiting,
 * maxInGroup (-1: none), tagSteps, priorityLimit. Returns {"ok", priority, tag, position} or a refusal
 * {"group"|"all"|"dup", count, startsBefore}.
 */
const ADD_SCRIPT = `
local state, waiting, jobs, gprefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, group = ARGV[1], ARGV[2]
local stride, maxWaiting, maxInGroup = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local steps, limit = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('HEXISTS', jobs, id) == 1 then return {'dup', 0, 0} end
local gkey = gprefix .. group
local total = redis.call('ZCARD', waiting)
local inGroup = redis.call('ZCARD', gkey)
-- A bound of 0 still lets a job in when nothing waits at all: it is next to start.
if maxInGroup >= 0 and inGroup >= maxInGroup and not (maxInGroup == 0 and total == 0) then
  local before = total
  local head = redis.call('ZRANGE', gkey, 0, 0, 'WITHSCORES')
  if head[2] then before = redis.call('ZCOUNT', waiting, '-inf', '(' .. head[2]) end
  return {'group', inGroup, before}
end
if maxWaiting >= 0 and total >= maxWaiting and not (maxWaiting == 0 and total == 0) then return {'all', total, 0} end
local v = tonumber(redis.call('HGET', state, 'v') or '0')
local fin = tonumber(redis.call('HGET', state, 'g:' .. group) or '0')
local tag = math.max(v, fin)
redis.call('HSET', state, 'g:' .. group, tostring(tag + stride))
local base = tonumber(redis.call('HGET', state, 'base') or '0')
local priority = math.min(limit, math.floor((tag - base) * steps) + 1)
local seq = redis.call('HINCRBY', state, 'seq', 1) % 2097152
local score = priority * 2097152 + seq
redis.call('ZADD', waiting, score, id)
redis.call('ZADD', gkey, score, id)
redis.call('HSET', jobs, id, group)
local position = redis.call('ZCOUNT', waiting, '-inf', '(' .. score)
return {'ok', priority, tostring(tag), position}
`;

/**
 * A waiting job leaves the waiting sets (started, or removed). KEYS as ADD_SCRIPT; ARGV: id, tag ("" when removed).
 * Starting moves V up to the job's tag; when nothing waits any more the priority base moves up to V.
 */
const LEAVE_SCRIPT = `
local state, waiting, jobs, gprefix = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, tag = ARGV[1], ARGV[2]
local group = redis.call('HGET', jobs, id)
if not group then return 0 end
redis.call('HDEL', jobs, id)
redis.call('ZREM', waiting, id)
redis.call('ZREM', gprefix .. group, id)
if tag ~= '' then
  local v = tonumber(redis.call('HGET', state, 'v') or '0')
  if tonumber(tag) > v then redis.call('HSET', state, 'v', tag) end
end
if redis.call('ZCARD', waiting) == 0 then
  redis.call('HSET', state, 'base', redis.call('HGET', state, 'v') or '0')
end
return 1
`;

function positive(v: number | undefined, param: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (!(Number.isFinite(v) && v > 0)) throw new EaselError("E_INPUT_INVALID", `queue ${param} must be a number > 0, got ${v}`, { param });
  return v;
}

function countOrUnbounded(v: number | undefined, param: string): number {
  if (v === undefined) return -1;
  if (!(Number.isInteger(v) && v >= 0)) throw new EaselError("E_INPUT_INVALID", `queue ${param} must be an integer >= 0, got ${v}`, { param });
  return v;
}

/**
 * KEYS: the lanes' advertisement sets. ARGV: this process's member, ttl (ms). Each member's score is when its
 * advertisement runs out, by Redis's clock; members that ran out are dropped.
 */
const ADVERTISE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for _, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  redis.call('ZADD', k, now + ttl, ARGV[1])
  redis.call('PEXPIRE', k, ttl * 4)
end
return now
`;

/** KEYS: one lane's advertisement set. Returns how many live processes advertise it. */
const SERVING_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

/** The BullMQ queue of a lane: `<name>@<lane>` (BullMQ names may not hold ':'; a lane with other characters goes in hex). */
export function laneQueueName(name: string, lane: string | undefined): string {
  if (lane === undefined) return name;
  return /^[A-Za-z0-9_.-]{1,128}$/.test(lane) ? `${name}@${lane}` : `${name}#${Buffer.from(lane).toString("hex")}`;
}

const shuttingDown = () => new EaselError("E_OVERLOADED", "The server is shutting down.", { details: { retryAfterSeconds: 1 } });

export async function openBullmqQueue<P>(opts: BullmqQueueOptions): Promise<JobQueue<P>> {
  if (!(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new EaselError("E_INPUT_INVALID", `queue concurrency must be an integer >= 1, got ${opts.concurrency}`, { param: "concurrency" });
  }
  const maxWaiting = countOrUnbounded(opts.maxWaiting, "maxWaiting");
  const prefix = opts.prefix ?? "easel";
  const leaseMs = opts.leaseMs ?? 30_000;
  const fair = `${prefix}-fair:${opts.name}`;
  const keys = [`${fair}:state`, `${fair}:waiting`, `${fair}:jobs`, `${fair}:group:`];
  const cancelChannel = `${fair}:cancel`;

  // BullMQ's blocking connections need maxRetriesPerRequest null; the others fail fast when Redis is gone.
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  const sub = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    await sub.connect();
  } catch (e) {
    redis.disconnect();
    sub.disconnect();
    throw new EaselError("E_INTERNAL", `cannot reach Redis at ${redactUrl(opts.redisUrl)}: ${(e as Error).message}`, { cause: e });
  }
  const queues = new Map<string, Queue<Carried<P>>>();
  /** The BullMQ queue of a lane, opened on first use. */
  const queueFor = (lane: string | undefined): Queue<Carried<P>> => {
    const name = laneQueueName(opts.name, lane);
    let q = queues.get(name);
    if (!q) {
      q = new Queue<Carried<P>>(name, { connection: redis, prefix });
      queues.set(name, q);
    }
    return q;
  };
  queueFor(undefined);
  const workers: Worker<Carried<P>>[] = [];
  let workerConnection: Redis | undefined;
  const active = new Map<string, AbortController>();
  let closed = false;
  let running = 0;
  const servingKey = (lane: string) => `${fair}:serving:${lane}`;
  /** This process's advertisement: its lanes, renewed every half lease. */
  const member = randomUUID();
  let advertised: { keys: string[]; timer: NodeJS.Timeout; first: Promise<void> } | undefined;
  const activeCount = async () => (await Promise.all([...queues.values()].map((q) => q.getActiveCount()))).reduce((a, b) => a + b, 0);

  await sub.subscribe(cancelChannel);
  sub.on("message", (_channel: string, id: string) => {
    active.get(id)?.abort(new EaselError("E_CANCELLED", "The request was cancelled."));
  });

  async function meanRunMs(): Promise<number> {
    const v = Number(await redis.hget(keys[0], "meanRunMs"));
    return Number.isFinite(v) ? v : 0;
  }

  /** Seconds until about `starts` more jobs have started (>= 1), from the mean run time and the jobs running now. */
  async function secondsUntil(starts: number): Promise<number> {
    const parallel = Math.max(1, await activeCount());
    return Math.max(1, Math.ceil((starts * (await meanRunMs())) / parallel / 1000));
  }

  async function refusal(kind: string, count: number, before: number, maxInGroup: number): Promise<EaselError> {
    if (kind === "group") {
      const retryAfterSeconds = await secondsUntil(before + 1);
      return new EaselError(
        "E_RATE_LIMITED",
        `Too many queued jobs for this key (${count} waiting, the most allowed); retry after ${retryAfterSeconds} s.`,
        { details: { retryAfterSeconds, limit: "queued_jobs", waiting: count, maxWaiting: maxInGroup } },
      );
    }
    const retryAfterSeconds = await secondsUntil(1);
    return new EaselError("E_OVERLOADED", `The server is busy (${count} jobs waiting, the most it queues); retry after ${retryAfterSeconds} s.`, {
      details: { retryAfterSeconds, waiting: count, maxWaiting },
    });
  }

  function validate(o: QueueAddOptions): { stride: number; maxInGroup: number } {
    if (typeof o.group !== "string") throw new EaselError("E_INPUT_INVALID", "queue group must be a string", { param: "group" });
    const stride = positive(o.cost, "cost", 1) / positive(o.priority, "priority", 1);
    if (o.timeoutMs !== undefined) positive(o.timeoutMs, "timeoutMs", 0);
    return { stride, maxInGroup: countOrUnbounded(o.maxWaitingInGroup, "maxWaitingInGroup") };
  }

  async function run(handler: (job: QueueJob<P>) => Promise<void>, job: Job<Carried<P>>, token: string | undefined): Promise<void> {
    const id = job.id!;
    const data = job.data;
    await redis.eval(LEAVE_SCRIPT, 4, ...keys, id, String(data.tag));
    const ctrl = new AbortController();
    active.set(id, ctrl);
    const startedAt = Date.now();
    const timer =
      data.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            const seconds = Math.round(data.timeoutMs! / 100) / 10;
            ctrl.abort(
              new EaselError("E_TIMEOUT", `The job ran for ${seconds} s, the longest this server allows, and was stopped.`, {
                details: { timeoutSeconds: seconds },
              }),
            );
          }, data.timeoutMs);
    try {
      if (closed) ctrl.abort(closing());
      // A handler that throws has failed to settle its own job; the queue only guarantees the slot is freed.
      await handler({ id, payload: data.payload, group: data.group, signal: ctrl.signal }).catch(() => undefined);
      if (ctrl.signal.reason instanceof HandedBack && token !== undefined) {
        // Back to its queue at its priority, the lease released: another worker takes it now.
        await job.moveToWait(token);
        throw new WaitingError();
      }
    } finally {
      clearTimeout(timer);
      active.delete(id);
      const ran = Date.now() - startedAt;
      const mean = await meanRunMs().catch(() => 0);
      const next = mean === 0 ? ran : mean + RUN_TIME_SMOOTHING * (ran - mean);
      await redis.hset(keys[0], "meanRunMs", String(Math.round(next))).catch(() => undefined);
    }
  }

  let handingBack = false;
  const closing = () => (handingBack ? new HandedBack() : new EaselError("E_CANCELLED", "The server is shutting down."));

  /** While this process runs as many jobs as it may, none of its lanes fetches another (more than one lane only). */
  const pauseLanes = async () => {
    if (workers.length > 1) await Promise.all(workers.map((w) => w.pause(true)));
  };
  const resumeLanes = () => {
    if (workers.length > 1 && !closed) for (const w of workers) if (w.isPaused()) w.resume();
  };

  async function advertise(lanes: string[]): Promise<void> {
    await redis.eval(ADVERTISE_SCRIPT, lanes.length, ...lanes.map(servingKey), member, String(leaseMs));
  }

  return {
    driver: "bullmq",

    async add(id, payload, o) {
      const { stride, maxInGroup } = validate(o);
      if (closed) throw shuttingDown();
      const r = (await redis.eval(ADD_SCRIPT, 4, ...keys, id, o.group, String(stride), String(maxWaiting), String(maxInGroup), String(TAG_STEPS), String(PRIORITY_LIMIT))) as [
        string,
        number,
        string | number,
        number,
      ];
      if (r[0] === "dup") throw new EaselError("E_INTERNAL", `job ${id} is already queued`);
      if (r[0] !== "ok") throw await refusal(r[0], r[1], Number(r[2]), maxInGroup);
      const carried: Carried<P> = { payload, group: o.group, tag: Number(r[2]), ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) };
      try {
        await queueFor(o.lane).add("job", carried, { jobId: id, priority: r[1], removeOnComplete: true, removeOnFail: true, attempts: 1 });
      } catch (e) {
        await redis.eval(LEAVE_SCRIPT, 4, ...keys, id, "").catch(() => undefined);
        throw e;
      }
      return { position: r[3] };
    },

    async checkCapacity(o) {
      const { maxInGroup } = validate(o);
      if (closed) throw shuttingDown();
      const [total, inGroup] = await Promise.all([redis.zcard(keys[1]), redis.zcard(keys[3] + o.group)]);
      if (maxInGroup >= 0 && inGroup >= maxInGroup && !(maxInGroup === 0 && total === 0)) {
        const head = await redis.zrange(keys[3] + o.group, "0", "0", "WITHSCORES");
        const before = head[1] === undefined ? total : await redis.zcount(keys[1], "-inf", `(${head[1]}`);
        throw await refusal("group", inGroup, before, maxInGroup);
      }
      if (maxWaiting >= 0 && total >= maxWaiting && !(maxWaiting === 0 && total === 0)) throw await refusal("all", total, 0, maxInGroup);
    },

    process(handler, po = {}) {
      if (workerConnection) throw new EaselError("E_INTERNAL", "the queue already has a handler");
      if (closed) return;
      workerConnection = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
      const lanes = po.lanes === undefined ? [undefined] : [...new Set(po.lanes)];
      for (const lane of lanes) {
        const w = new Worker<Carried<P>>(
          laneQueueName(opts.name, lane),
          async (job, token) => {
            if (running >= opts.concurrency) {
              // Taken by a lane while another lane filled this process: back to the queue for another process.
              await pauseLanes();
              await job.moveToWait(token!);
              throw new WaitingError();
            }
            running++;
            if (running >= opts.concurrency) await pauseLanes();
            try {
              await run(handler, job, token);
            } finally {
              running--;
              resumeLanes();
            }
          },
          {
            connection: workerConnection,
            prefix,
            concurrency: opts.concurrency,
            lockDuration: leaseMs,
            stalledInterval: Math.max(1000, Math.floor(leaseMs / 2)),
            maxStalledCount: opts.maxLeaseLosses ?? 5,
          },
        );
        // Connection trouble is retried by ioredis; an unhandled "error" event would end the process.
        w.on("error", () => undefined);
        // The handler never fails a job (run() catches), so a failure is BullMQ's own: a job whose lease was lost more
        // than maxLeaseLosses times is failed, without running, by the process that takes it next.
        w.on("failed", (job) => {
          if (job?.id) po.onGivenUp?.(job.id);
        });
        workers.push(w);
      }
      const named = lanes.filter((l): l is string => l !== undefined);
      if (named.length > 0) {
        const first = advertise(named).catch(() => undefined);
        const timer = setInterval(() => void advertise(named).catch(() => undefined), Math.max(500, Math.floor(leaseMs / 2)));
        timer.unref();
        advertised = { keys: named.map(servingKey), timer, first };
      }
    },

    async whenServing() {
      await advertised?.first;
    },

    async serving(lane) {
      return Number(await redis.eval(SERVING_SCRIPT, 1, servingKey(lane))) > 0;
    },

    async cancel(id, lane): Promise<CancelOutcome> {
      const queue = queueFor(lane);
      if (active.has(id)) {
        active.get(id)!.abort(new EaselError("E_CANCELLED", "The request was cancelled."));
        return "aborted";
      }
      if (await redis.hexists(keys[2], id)) {
        // Removing fails (0) for a job a worker holds: it started meanwhile.
        if ((await queue.remove(id)) === 1) {
          await redis.eval(LEAVE_SCRIPT, 4, ...keys, id, "");
          return "removed";
        }
      }
      if ((await queue.getJobState(id)) === "active") {
        await redis.publish(cancelChannel, id);
        return "aborted";
      }
      return "unknown";
    },

    async has(id, lane) {
      const state = await queueFor(lane).getJobState(id);
      return state === "waiting" || state === "prioritized" || state === "active" || state === "delayed" || state === "waiting-children";
    },

    async stats(group) {
      const [waiting, activeNow] = await Promise.all([redis.zcard(keys[1]), activeCount()]);
      const out = { waiting, active: activeNow };
      return group === undefined ? out : { ...out, groupWaiting: await redis.zcard(keys[3] + group) };
    },

    async close(o = {}) {
      if (closed) return;
      closed = true;
      handingBack = o.handBack ?? false;
      if (advertised) {
        clearInterval(advertised.timer);
        // No longer taking jobs: API nodes stop counting on this process at once.
        await Promise.all(advertised.keys.map((k) => redis.zrem(k, member))).catch(() => undefined);
      }
      for (const c of active.values()) c.abort(closing());
      await Promise.all(workers.map((w) => w.close()));
      await workerConnection?.quit().catch(() => workerConnection?.disconnect());
      for (const q of queues.values()) await q.close();
      await sub.quit().catch(() => sub.disconnect());
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * The shared queue of a scaled-out deployment (queue.redisUrl): BullMQ on Redis and the job event bus beside it,
 * opened alike by `easel serve` and `easel worker`.
 */
import { InvalidArgumentError } from "commander";
import type { Config } from "../config/index.ts";
import { openBullmqQueue } from "../queue/bullmq.ts";
import { openRedisEventBus } from "../queue/redis-events.ts";
import type { JobEventBus, JobQueue } from "../queue/queue.ts";

export interface SharedQueue {
  queue: JobQueue<{ jobId: string }>;
  events: JobEventBus;
}

/** A `--workers` / `--concurrency` value: an integer from 0 to 64. */
export function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new InvalidArgumentError(`expected an integer from 0 to 64, got "${v}"`);
  return n;
}

/** Opens both, or undefined when no Redis is configured; `concurrency` is how many jobs this process runs at once. */
export async function openSharedQueue(config: Config, concurrency: number): Promise<SharedQueue | undefined> {
  const { redisUrl, name, maxQueued, leaseSeconds } = config.queue;
  if (!redisUrl) return undefined;
  const events = await openRedisEventBus({ redisUrl, name });
  try {
    const queue = await openBullmqQueue<{ jobId: string }>({
      redisUrl,
      name,
      concurrency: Math.max(1, concurrency),
      maxWaiting: maxQueued,
      leaseMs: leaseSeconds * 1000,
    });
    return { queue, events };
  } catch (e) {
    await events.close();
    throw e;
  }
}
